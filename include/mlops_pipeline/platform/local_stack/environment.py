"""The local stack's configuration: its ports, the admin's password, the secrets the Airflow
components share and the environment they all run with."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.data import storage
from mlops_pipeline.orchestration.runner import embedded_airflow_env
from mlops_pipeline.platform import airflow_users
from mlops_pipeline.platform.local_stack import StackError
from mlops_pipeline.usecases.loader import declared_usecases

REPO = Path(__file__).resolve().parents[4]
HOST = "127.0.0.1"
ADMIN = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"
SECRETS_FILE = "local_stack_secrets.json"
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
# The stages the DAG factory builds for every use case (``<usecase>__<stage>``), named here so
# that this process never imports Airflow (tests keep it equal to the factory's).
DAG_STAGES = ("ingest", "materialize", "train", "deploy", "rollback", "monitor_drift", "score")
# The stages on a clock (the others run on asset events or when asked): on the demo's state,
# whose partitions are long past, they would wait for files that never land and check nights
# that have no data, so the stack keeps them paused unless asked (``SCHEDULED_DAGS``).
SCHEDULED_STAGES = ("ingest", "monitor_drift", "score")
SCHEDULED_DAGS = "SCHEDULED_DAGS"


@dataclass(frozen=True)
class Ports:
    airflow: int = 8080
    mlflow: int = 5000
    model_server: int = 8000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Ports:
        return cls(
            airflow=int(environ.get("AIRFLOW_PORT", cls.airflow)),
            mlflow=int(environ.get("MLFLOW_PORT", cls.mlflow)),
            model_server=int(environ.get("MODEL_SERVER_PORT", cls.model_server)),
        )

    def model_servers(self, usecases: Iterable[str]) -> dict[str, int]:
        """The model server's port of each use case: consecutive from ``model_server``."""
        return {name: self.model_server + i for i, name in enumerate(sorted(usecases))}


def _private_json(path: Path, make: dict[str, str]) -> dict[str, str]:
    """Read ``path``, adding the keys of ``make`` it lacks; written with mode 600."""
    values = json.loads(path.read_text()) if path.exists() else {}
    missing = {k: v for k, v in make.items() if k not in values}
    if missing or not path.exists():
        values.update(missing)
        storage.write_private(path, json.dumps(values))
    os.chmod(path, 0o600)
    return values


def admin_password(airflow_home: Path) -> str:
    """The admin's password, generated on first use and kept in the simple auth manager's
    password file (which Airflow reads and never overwrites for a listed user)."""
    path = airflow_home / PASSWORDS_FILE
    return _private_json(path, {ADMIN: secrets.token_urlsafe(18)})[ADMIN]


def airflow_environment(
    settings: Settings,
    ports: Ports,
    environ: Mapping[str, str] = os.environ,
    usecases: Iterable[str] | None = None,
) -> dict[str, str]:
    """The environment of every Airflow component: embedded defaults (variables already set
    win), the simple auth manager with the generated admin, shared secrets, LocalExecutor.

    The post-promotion smoke test asks the use case's model server: ``MLOPS_SERVING_URL`` can
    name one server per use case only by host (``{usecase}``), and here they differ by port, so
    it is set when one use case is declared (with more, set it yourself or go without)."""
    usecases = sorted(declared_usecases(settings.usecases_dir) if usecases is None else usecases)
    if airflow_users.all_admins(environ):
        raise StackError(f"{airflow_users.ALL_ADMINS} turns the login off")
    airflow_home = Path(environ.get("AIRFLOW_HOME", settings.home / "airflow"))
    airflow_home.mkdir(parents=True, exist_ok=True)
    shared = _private_json(
        airflow_home / SECRETS_FILE,
        {"jwt_secret": secrets.token_urlsafe(64), "api_secret_key": secrets.token_urlsafe(32)},
    )
    admin_password(airflow_home)
    base_url = f"http://{HOST}:{ports.airflow}"
    defaults = {
        **embedded_airflow_env(airflow_home, REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        # The executor `airflow standalone` uses on SQLite; few slots on a laptop.
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "MLOPS_HOME": str(settings.home),
        "MLOPS_USECASES_DIR": str(settings.usecases_dir),
        # The MLOps view's links to the MLflow UI this stack runs.
        "MLOPS_MLFLOW_UI_URL": f"http://{HOST}:{ports.mlflow}",
    }
    if len(usecases) == 1:
        # The post-promotion smoke test asks the model server this stack runs.
        defaults["MLOPS_SERVING_URL"] = f"http://{HOST}:{ports.model_server}"
    forced = {
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        airflow_users.ALL_ADMINS: "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / PASSWORDS_FILE),
        "AIRFLOW__API_AUTH__JWT_SECRET": shared["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": shared["api_secret_key"],
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(ports.airflow),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        # Off by default; should someone turn it on, it stays on this machine too.
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": HOST,
    }
    return {**defaults, **environ, **forced}


def project_dag_ids(
    usecases: Iterable[str] | None = None, stages: Iterable[str] = DAG_STAGES
) -> list[str]:
    """Every DAG of every declared use case (``dags/<usecase>.py`` builds ``<usecase>__*``), or
    those of ``stages``."""
    if usecases is None:
        usecases = declared_usecases(get_settings().usecases_dir)
    stages = list(stages)
    return [f"{name}__{stage}" for name in sorted(usecases) for stage in stages]


def paused_and_unpaused(
    usecases: Iterable[str], environ: Mapping[str, str] = os.environ
) -> tuple[list[str], list[str]]:
    """The DAGs the stack pauses and those it unpauses: the scheduled ones stay paused unless
    ``SCHEDULED_DAGS=unpaused``."""
    choice = environ.get(SCHEDULED_DAGS, "paused")
    if choice not in ("paused", "unpaused"):
        raise StackError(f"{SCHEDULED_DAGS}={choice!r}: 'paused' (the default) or 'unpaused'")
    usecases = sorted(usecases)
    scheduled = project_dag_ids(usecases, SCHEDULED_STAGES)
    others = [d for d in project_dag_ids(usecases) if d not in scheduled]
    if choice == "unpaused":
        return [], project_dag_ids(usecases)
    return scheduled, others
