"""Fixtures of the web UI tests: a prepared platform state and Airflow's own API app."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_pipeline.config import get_settings
from tests.ui.state import BAD, GOOD, prepare_lake, record_nights, train_and_decide

PASSWORD = "ui-tests-" + os.urandom(12).hex()


@pytest.fixture(scope="module")
def prepared_home(tmp_path_factory) -> Iterator[Path]:
    """A home with a lake, v1 promoted by the gates, v2 rejected by them, and 10 drift
    nights; MLOPS_HOME points at it for the module (the view reads settings per request)."""
    home = tmp_path_factory.mktemp("ui") / "home"
    previous = os.environ.get("MLOPS_HOME")
    os.environ["MLOPS_HOME"] = str(home)
    try:
        settings = prepare_lake(get_settings())
        assert train_and_decide(settings, GOOD, "good") == "1"
        assert train_and_decide(settings, BAD, "bad on purpose") == "2"
        record_nights(settings, 10)
        yield home
    finally:
        if previous is None:
            os.environ.pop("MLOPS_HOME", None)
        else:
            os.environ["MLOPS_HOME"] = previous


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory) -> Iterator[object]:
    """Airflow's api-server app in this process (the plugin mounted by Airflow itself), with
    the simple auth manager and one admin whose password the test knows."""
    from fastapi.testclient import TestClient

    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    env = {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(48).hex(),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from airflow.api_fastapi.app import create_app, purge_cached_app

    from mlops_pipeline.orchestration.runner import migrate_metadata_db

    migrate_metadata_db()
    purge_cached_app()
    try:
        with TestClient(create_app(), base_url="http://127.0.0.1") as client:
            yield client
    finally:
        purge_cached_app()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def login(client, username: str = "admin", password: str = PASSWORD) -> str:
    answer = client.post("/auth/token", json={"username": username, "password": password})
    assert answer.status_code == 201, answer.text
    return answer.json()["access_token"]
