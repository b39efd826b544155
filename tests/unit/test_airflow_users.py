"""airflow-init writes the simple auth manager's password file from the environment, and
refuses any configuration that would let Airflow run without a login."""

from __future__ import annotations

import json

import pytest

from mlops_pipeline.platform import airflow_users

GOOD = {
    airflow_users.USERS: "ops:admin",
    airflow_users.ADMIN_USERNAME: "ops",
    airflow_users.ADMIN_PASSWORD: "x" * 24,
    airflow_users.ALL_ADMINS: "False",
}


def test_writes_the_admin_password_privately(tmp_path):
    path = airflow_users.write_password_file(
        {**GOOD, airflow_users.PASSWORDS_FILE: str(tmp_path / "auth" / "passwords.json")}
    )
    assert json.loads(path.read_text()) == {"ops": "x" * 24}
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({airflow_users.ALL_ADMINS: "True"}, "turns authentication off"),
        ({airflow_users.ADMIN_PASSWORD: "short"}, "at least 16"),
        ({airflow_users.ADMIN_PASSWORD: ""}, "at least 16"),
        ({airflow_users.USERS: "ops:viewer"}, "must list ops:admin"),
        ({airflow_users.USERS: ""}, "must list ops:admin"),
    ],
)
def test_refuses_configurations_without_a_real_login(tmp_path, change, reason):
    env = {**GOOD, airflow_users.PASSWORDS_FILE: str(tmp_path / "p.json"), **change}
    with pytest.raises(airflow_users.InsecureAuthConfig, match=reason):
        airflow_users.write_password_file(env)
    assert not (tmp_path / "p.json").exists()
