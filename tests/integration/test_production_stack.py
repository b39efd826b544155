"""The production stack without Docker: what docker-compose.yaml runs, run for real here.

- ``deploy/postgres/init-databases.sh`` creates the Airflow, MLflow and Feast databases and
  roles on the machine's Postgres (own names, dropped afterwards).
- ``deploy/mlflow/start-server.sh`` starts the MLflow tracking server on a free port: Postgres
  backend store, ``--serve-artifacts``, basic auth with the admin password from the
  environment.
- airflow-init's own command (read from the compose file) migrates Airflow's metadata database
  on Postgres and writes the admin's password file.
- The pipeline (ingest -> materialize -> train -> deploy) runs through Airflow on that profile
  in a subprocess, with the deploy DAG's Docker target pointed at a stand-in engine.
- The real ``airflow api-server`` rejects requests without a login and accepts the admin's.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Generator
from pathlib import Path

import httpx
import pytest
import yaml

from mlops_pipeline.serving.process import free_port, wait_until_ready
from tests.conftest import REPO, skip_or_fail
from tests.fake_docker_engine import fake_docker_engine
from tests.integration.conftest import (
    POSTGRES_ADMIN_URL,
    REDIS_HOST,
    REDIS_PORT,
    postgres_admin,
    remove_feast_project,
)
from tests.integration.production_pipeline import DAYS

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())


@contextlib.contextmanager
def background(
    command: list[str], env: dict[str, str], ready_url: str, log: Path, timeout_s: float = 120
) -> Generator[subprocess.Popen]:
    """Start ``command`` in its own process group; yield once ``ready_url`` answers 200; stop
    the whole group (servers with worker processes) on exit."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_ready(process, ready_url, timeout_s, lambda: log.read_text()[-3000:])
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _url(driver: str, role: str, database: str) -> str:
    host = POSTGRES_ADMIN_URL.split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+{driver}://{role}@{host}/{database}"


@pytest.fixture(scope="module")
def databases(redis_client) -> Generator[dict[str, str]]:
    """The compose init script, run against the machine's Postgres with this run's names."""
    suffix = uuid.uuid4().hex[:8]
    names = {part: f"mlops_{part}_{suffix}" for part in ("airflow", "mlflow", "feast")}
    admin = postgres_admin()
    host_port = POSTGRES_ADMIN_URL.split("@", 1)[1].rsplit("/", 1)[0]
    host, _, port = host_port.partition(":")
    env = {
        **os.environ,
        "PGHOST": host,
        "PGPORT": port or "5432",
        "POSTGRES_USER": POSTGRES_ADMIN_URL.split("//", 1)[1].split("@", 1)[0].split(":")[0],
        **{f"{part.upper()}_DB_NAME": name for part, name in names.items()},
        **{f"{part.upper()}_DB_PASSWORD": secrets.token_urlsafe(24) for part in names},
    }
    try:
        done = subprocess.run(
            ["sh", str(REPO / "deploy/postgres/init-databases.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        yield names
    finally:
        with admin:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture(scope="module")
def mlflow_server(databases, tmp_path_factory) -> Generator[dict[str, str]]:
    """deploy/mlflow/start-server.sh on a free port: Postgres store, served artifacts, auth."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    credentials = {"username": "admin", "password": secrets.token_urlsafe(24)}
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_BACKEND_STORE_URI": _url("psycopg2", databases["mlflow"], databases["mlflow"]),
        "MLFLOW_ARTIFACTS_DESTINATION": str(folder / "artifacts"),
        "MLFLOW_ALLOWED_HOSTS": f"127.0.0.1:{port},localhost:{port}",
        "MLFLOW_AUTH_ADMIN_USERNAME": credentials["username"],
        "MLFLOW_AUTH_ADMIN_PASSWORD": credentials["password"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(24),
        "MLFLOW_AUTH_CONFIG_PATH": str(folder / "basic_auth.ini"),
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
    }
    url = f"http://127.0.0.1:{port}"
    command = ["sh", str(REPO / "deploy/mlflow/start-server.sh")]
    with background(command, env, f"{url}/health", folder / "server.log"):
        yield {"url": url, **credentials, "artifacts": str(folder / "artifacts")}


@pytest.fixture(scope="module")
def production_env(databases, mlflow_server, tmp_path_factory) -> dict[str, str]:
    """The production profile's environment, as docker-compose.yaml sets it for Airflow."""
    home = tmp_path_factory.mktemp("production")
    airflow = COMPOSE["services"]["airflow-scheduler"]["environment"]
    auth = {k: v for k, v in airflow.items() if k.startswith("AIRFLOW__CORE__SIMPLE_AUTH")}
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _url(
            "psycopg2", databases["airflow"], databases["airflow"]
        ),
        "AIRFLOW__CORE__AUTH_MANAGER": airflow["AIRFLOW__CORE__AUTH_MANAGER"],
        **auth,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "auth" / "passwords.json"),
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW_ADMIN_USERNAME": "admin",
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(24),
        "MLOPS_HOME": str(home / "mlops"),
        "MLOPS_PROFILE": "production",
        "MLOPS_BUILD_DATA_DOCS": "false",
        "MLOPS_FEAST_PROJECT_PREFIX": f"it_{databases['feast'][-8:]}_",
        "MLOPS_FEAST_REGISTRY_URL": _url("psycopg", databases["feast"], databases["feast"]),
        "MLOPS_REDIS_CONNECTION": f"{REDIS_HOST}:{REDIS_PORT}",
        "MLOPS_MLFLOW_TRACKING_URI": mlflow_server["url"],
        "MLFLOW_TRACKING_USERNAME": mlflow_server["username"],
        "MLFLOW_TRACKING_PASSWORD": mlflow_server["password"],
    }


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@pytest.fixture(scope="module")
def airflow_initialized(production_env) -> dict[str, str]:
    """airflow-init's command from the compose file, run with bash on this profile."""
    (script,) = COMPOSE["services"]["airflow-init"]["command"]
    done = subprocess.run(
        ["bash", "-c", script],
        env=production_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return production_env


@pytest.fixture(scope="module")
def pipeline(airflow_initialized, redis_client, tmp_path_factory) -> Generator[dict]:
    """The pipeline on the production profile in a subprocess, the deploy DAG's Docker target
    pointed at a stand-in engine."""
    from mlops_pipeline.config import Settings

    env = airflow_initialized
    socket_path = tmp_path_factory.mktemp("docker") / "docker.sock"
    settings = Settings.from_env(env)
    try:
        with fake_docker_engine(socket_path, ["model-server"]) as engine:
            done = subprocess.run(
                [sys.executable, "-m", "tests.integration.production_pipeline"],
                env={
                    **env,
                    "MLOPS_MODEL_SERVER_CONTAINER": "model-server",
                    "MLOPS_DOCKER_URL": engine.url,
                },
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=900,
            )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        yield {"result": result, "settings": settings, "env": env, "docker": engine}
    finally:
        with contextlib.suppress(Exception):
            remove_feast_project(settings, redis_client)


def test_init_script_gives_each_component_its_own_database(databases):
    with postgres_admin() as admin:
        for part, name in databases.items():
            owner, superuser, has_password = admin.execute(
                "SELECT pg_get_userbyid(d.datdba), r.rolsuper, r.rolpassword IS NOT NULL "
                "FROM pg_database d JOIN pg_authid r ON r.rolname = %s WHERE d.datname = %s",
                (name, name),
            ).fetchone()
            assert (owner, superuser, has_password) == (name, False, True), part
            for other in databases.values():
                can = admin.execute(
                    "SELECT has_database_privilege(%s, %s, 'CONNECT')", (other, name)
                ).fetchone()[0]
                assert can == (other == name), f"{other} can connect to {name}"


def test_mlflow_server_requires_authentication(mlflow_server):
    url = f"{mlflow_server['url']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=(mlflow_server["username"], "wrong-password")).status_code == 401
    good = (mlflow_server["username"], mlflow_server["password"])
    assert httpx.get(url, auth=good).status_code == 200
    # Only the allowed Host headers are served (DNS rebinding).
    assert httpx.get(url, auth=good, headers={"Host": "evil.example"}).status_code >= 400


def test_pipeline_runs_on_postgres_mlflow_server_and_redis(pipeline, mlflow_server, monkeypatch):
    from mlops_pipeline.deployment import registry
    from mlops_pipeline.deployment.decisions import latest_decisions
    from mlops_pipeline.features.access import OnlineFeatureReader

    result, settings = pipeline["result"], pipeline["settings"]
    assert {day: run["state"] for day, run in result["ingest"].items()} == {
        day.isoformat(): "success" for day in DAYS
    }
    for dag in ("materialize", "train", "deploy"):
        assert result[dag]["state"] == "success", (dag, result[dag]["tasks"])
    assert result["train"]["tasks"]["train"] == "success"
    deploy = result["deploy"]["tasks"]
    assert (deploy["promote"], deploy["reject"]) == ("success", "skipped")

    # The Docker deploy target restarted the model-server container after the promotion.
    assert deploy["restart_model_server"] == "success"
    restarts = [r for r in pipeline["docker"].requests if r[0] == "POST"]
    assert [r[1] for r in restarts] == ["/containers/model-server/restart"]

    # The registry lives on the tracking server, the artifacts in its served store.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", mlflow_server["username"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", mlflow_server["password"])
    tracking = registry.client(settings)
    champion = registry.version_for_alias(tracking, settings.spec.model_name, registry.CHAMPION)
    assert str(champion.version) == result["version"]
    assert champion.source.startswith(("models:/", "mlflow-artifacts:"))
    assert any(Path(mlflow_server["artifacts"]).rglob("MLmodel"))
    (record,) = latest_decisions(settings)
    assert record["outcome"] == "promoted"

    # Features were read back from Redis through the registry on Postgres.
    served = OnlineFeatureReader(settings).read([1, 2, 3])
    assert all(value is not None for value in served[settings.spec.feature_columns[0]])

    # Airflow's metadata is in Postgres: every run above is recorded there.
    import psycopg

    conninfo = _libpq_url(pipeline["env"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    with psycopg.connect(conninfo) as conn:
        runs = dict(conn.execute("SELECT dag_id, count(*) FROM dag_run GROUP BY dag_id").fetchall())
    name = settings.usecase_name
    assert runs == {
        f"{name}__ingest": len(DAYS),
        f"{name}__materialize": 1,
        f"{name}__train": 1,
        f"{name}__deploy": 1,
    }


def _libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg2://", "postgresql://", 1)


def test_airflow_api_rejects_requests_without_a_login(airflow_initialized, tmp_path):
    env = airflow_initialized
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = ["airflow", "api-server", "--port", str(port), "--host", "127.0.0.1", "-w", "1"]
    with background(command, env, f"{base}/api/v2/monitor/health", tmp_path / "api.log", 180):
        assert httpx.get(f"{base}/api/v2/dags").status_code == 401
        forged = {"Authorization": "Bearer not-a-token"}
        assert httpx.get(f"{base}/api/v2/dags", headers=forged).status_code in (401, 403)
        wrong = {"username": "admin", "password": "not-the-password"}
        assert httpx.post(f"{base}/auth/token", json=wrong).status_code in (401, 403)
        login = {"username": "admin", "password": env["AIRFLOW_ADMIN_PASSWORD"]}
        answer = httpx.post(f"{base}/auth/token", json=login)
        assert answer.status_code == 201, answer.text
        token = answer.json()["access_token"]
        dags = httpx.get(f"{base}/api/v2/dags", headers={"Authorization": f"Bearer {token}"})
        assert dags.status_code == 200, dags.text


def test_the_slim_serving_environment_serves_the_champion(pipeline, tmp_path):
    """What the model-server image installs (requirements-serving.in under requirements.txt's
    pins, then the package without dependencies) is enough to serve the champion."""
    import shutil

    uv = shutil.which("uv")
    if uv is None:
        skip_or_fail("uv is not installed (make venv installs it)")
    venv = tmp_path / "serving-venv"
    python = venv / "bin" / "python"
    # What the image's build copies before `pip install .` (building in the checkout would
    # leave a build/ directory there).
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, context / name)
    shutil.copytree(
        REPO / "include",
        context / "include",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"),
    )
    for step in (
        [uv, "venv", "-q", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "-q", "--python", str(python), "-c", "requirements.txt"]
        + ["-r", "requirements-serving.in"],
        [uv, "pip", "install", "-q", "--python", str(python), "--no-deps", str(context)],
    ):
        done = subprocess.run(step, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    installed = subprocess.run(
        [str(python), "-c", "import airflow"], capture_output=True, text=True, timeout=60
    )
    assert installed.returncode != 0, "the serving environment must not contain Airflow"

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(venv / "bin" / "mlops-pipeline"), "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    env = {
        **pipeline["env"],
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        # A non-editable install cannot find the repository: the image's ENV names it.
        "MLOPS_FEATURE_REPO": str(REPO / "feature_repo"),
        "MLOPS_USECASES_DIR": str(REPO / "usecases"),
        "MLOPS_SERVING_WORKERS": "2",  # as the compose file runs it
    }
    env.pop("PYTHONPATH", None)
    with background(command, env, f"{base}/ready", tmp_path / "serve.log", 180):
        version = pipeline["result"]["version"]
        assert httpx.get(f"{base}/model").json()["version"] == version
        from mlops_pipeline.config import Settings

        key = Settings.from_env(env).spec.entity.key
        answer = httpx.post(f"{base}/predict", json={"entities": {key: [1, 2]}}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_version"] == version and len(body["predictions"]) == 2
        exposition = httpx.get(f"{base}/metrics").text
        assert f'version="{version}"}} 1.0' in exposition, exposition[-2000:]
