"""Airflow's users for the production stack: the simple auth manager's password file.

Airflow's simple auth manager takes its users from ``[core] simple_auth_manager_users``
(``name:role``) and their passwords from a JSON file (``simple_auth_manager_passwords_file``);
left alone, it invents a password and prints it to the log. ``airflow-init`` runs this module
instead, so the admin's password is the one in the environment, written to a private file
that only the api-server reads. ``simple_auth_manager_all_admins`` (no login at all) is refused.

    python -m mlops_pipeline.platform.airflow_users      # reads the variables below
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from mlops_pipeline.data import storage

USERS = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
PASSWORDS_FILE = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
ALL_ADMINS = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"
ADMIN_USERNAME = "AIRFLOW_ADMIN_USERNAME"
ADMIN_PASSWORD = "AIRFLOW_ADMIN_PASSWORD"
MIN_PASSWORD_LENGTH = 16


class InsecureAuthConfig(ValueError):
    pass


def all_admins(environ: Mapping[str, str]) -> bool:
    """Whether the configuration turns the login off (every visitor an admin)."""
    return environ.get(ALL_ADMINS, "").strip().lower() in ("1", "true", "t", "yes")


def write_password_file(environ: Mapping[str, str] = os.environ) -> Path:
    """Write ``{admin: password}`` to the configured passwords file (mode 600) after checking
    that the configuration asks for a login."""
    if all_admins(environ):
        raise InsecureAuthConfig(f"{ALL_ADMINS} turns authentication off; unset it")
    username = environ.get(ADMIN_USERNAME, "admin")
    password = environ.get(ADMIN_PASSWORD, "")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InsecureAuthConfig(
            f"{ADMIN_PASSWORD} must hold at least {MIN_PASSWORD_LENGTH} characters (make secrets)"
        )
    users = dict(entry.split(":")[:2] for entry in environ.get(USERS, "").split(",") if entry)
    if users.get(username) != "admin":
        raise InsecureAuthConfig(f"{USERS} must list {username}:admin, got {environ.get(USERS)!r}")
    path = Path(environ[PASSWORDS_FILE])
    storage.write_private(path, json.dumps({username: password}))
    return path


def main() -> int:
    try:
        path = write_password_file()
    except (InsecureAuthConfig, KeyError) as exc:
        print(f"airflow users: {exc}", file=sys.stderr)
        return 1
    print(f"Airflow admin {os.environ.get(ADMIN_USERNAME, 'admin')!r}: password file {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
