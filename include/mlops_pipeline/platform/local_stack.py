"""``make airflow``: the whole platform on this machine, on the embedded defaults.

Starts Airflow's api-server, scheduler, dag-processor and triggerer (LocalExecutor on the
SQLite metadata database under ``MLOPS_HOME/airflow``, as ``airflow standalone`` does), the
MLflow UI on the embedded tracking store and one model server per declared use case, unpauses
every use case's DAGs and prints the URLs and the login. Ctrl-C (or SIGTERM) stops every
process it started, children included.

Authentication is on: Airflow's simple auth manager with one user, ``admin`` (role admin),
whose password is generated once (``secrets.token_urlsafe``) into
``AIRFLOW_HOME/simple_auth_manager_passwords.json`` (mode 600). The JWT and API secrets shared
by the Airflow components are generated once into ``AIRFLOW_HOME/local_stack_secrets.json``.

Ports (all bound to 127.0.0.1): ``AIRFLOW_PORT`` (8080), ``MLFLOW_PORT`` (5000),
``MODEL_SERVER_PORT`` (8000): the first use case's model server, the next ones on the following
ports in the use cases' sorted order.

    python -m mlops_pipeline.platform.local_stack
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.data import storage
from mlops_pipeline.failures import SpecError
from mlops_pipeline.orchestration.runner import embedded_airflow_env
from mlops_pipeline.platform import airflow_users
from mlops_pipeline.usecases.loader import declared_usecases

REPO = Path(__file__).resolve().parents[3]
HOST = "127.0.0.1"
ADMIN = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json"
SECRETS_FILE = "local_stack_secrets.json"
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# /api/v2/monitor/health names these; the api-server answering is the fourth.
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
# The stages the DAG factory builds for every use case (``<usecase>__<stage>``), named here so
# that this process never imports Airflow (tests keep it equal to the factory's).
DAG_STAGES = ("ingest", "materialize", "train", "deploy", "rollback", "monitor_drift")


class StackError(RuntimeError):
    """A component did not start, or the configuration would switch authentication off."""


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
    }
    return {**defaults, **environ, **forced}


def project_dag_ids(usecases: Iterable[str] | None = None) -> list[str]:
    """Every DAG of every declared use case (``dags/<usecase>.py`` builds ``<usecase>__*``)."""
    if usecases is None:
        usecases = declared_usecases(get_settings().usecases_dir)
    return [f"{name}__{stage}" for name in sorted(usecases) for stage in DAG_STAGES]


@dataclass
class Component:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, env: Mapping[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        # Its own session: Ctrl-C reaches only this module, which stops everything in order.
        self.process = subprocess.Popen(
            self.command,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _descendants(pids: Iterable[int]) -> list[object]:
    import psutil

    found = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            found += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


class LocalStack:
    """The processes of the local platform. ``start()`` returns when everything answers;
    ``stop()`` (also on leaving the ``with`` block) ends them all."""

    def __init__(
        self,
        settings: Settings | None = None,
        ports: Ports | None = None,
        environ: Mapping[str, str] | None = None,
        unpause: Iterable[str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.ports = ports or Ports.from_env()
        self.usecases = declared_usecases(self.settings.usecases_dir)
        if not self.usecases:
            raise StackError(f"no use case is declared under {self.settings.usecases_dir}")
        self.env = airflow_environment(
            self.settings, self.ports, os.environ if environ is None else environ, self.usecases
        )
        self.airflow_home = Path(self.env["AIRFLOW_HOME"])
        self.model_server_ports = self.ports.model_servers(self.usecases)
        self.unpause = list(project_dag_ids(self.usecases) if unpause is None else unpause)
        self.log_dir = log_dir or self.settings.home / "local_stack" / "logs"
        bin_dir = Path(sys.executable).parent
        airflow = str(bin_dir / "airflow")
        self.components = [
            Component(name, [airflow, name], self.log_dir / f"{name}.log")
            for name in AIRFLOW_COMPONENTS
        ]
        self.components += [
            Component(
                "mlflow",
                [
                    str(bin_dir / "mlflow"),
                    "server",
                    "--backend-store-uri",
                    self.settings.tracking_uri,
                    "--host",
                    HOST,
                    "--port",
                    str(self.ports.mlflow),
                    "--workers",
                    "1",
                ],
                self.log_dir / "mlflow.log",
            ),
        ]
        # One model server per use case: each loads its own champion and watches its alias.
        self.components += [
            Component(
                f"model-server-{name}",
                [
                    str(bin_dir / "mlops-pipeline"),
                    "serve",
                    "--usecase",
                    name,
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                ],
                self.log_dir / f"model-server-{name}.log",
            )
            for name, port in self.model_server_ports.items()
        ]

    @property
    def airflow_url(self) -> str:
        return f"http://{HOST}:{self.ports.airflow}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.ports.mlflow}"

    @property
    def model_server_urls(self) -> dict[str, str]:
        """Each use case's model server."""
        return {name: f"http://{HOST}:{port}" for name, port in self.model_server_ports.items()}

    @property
    def model_server_url(self) -> str:
        """The first use case's model server."""
        return next(iter(self.model_server_urls.values()))

    @property
    def password(self) -> str:
        return admin_password(self.airflow_home)

    def migrate(self) -> None:
        """Create or upgrade Airflow's metadata database with the project's pool, and the
        embedded MLflow store (before two servers race to create it), in a child process:
        this one never imports Airflow, so its configuration stays the children's."""
        code = (
            "from mlops_pipeline.orchestration.runner import migrate_metadata_db; "
            "from mlops_pipeline.config import get_settings; "
            "from mlops_pipeline.deployment.registry import client; "
            "migrate_metadata_db(); client(get_settings())"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise StackError(f"airflow db migrate failed:\n{done.stderr[-3000:]}")

    def start(self, timeout: float = 300.0) -> None:
        self.migrate()
        child_env = {
            **self.env,
            # The MLflow UI is for one person on this machine: no background job runners.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        for component in self.components:
            component.start(child_env)
        try:
            self.wait_ready(timeout)
            self.unpause_dags(timeout)
            self.warm_up()
        except BaseException:
            self.stop()
            raise

    def _check_alive(self) -> None:
        for component in self.components:
            if not component.running():
                code = component.process.returncode if component.process else None
                raise StackError(
                    f"{component.name} exited ({code}); log {component.log_path}:\n"
                    + component.tail()
                )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = "starting"
        while time.monotonic() < deadline:
            self._check_alive()
            waiting = self._not_ready()
            if not waiting:
                return
            time.sleep(1)
        raise StackError(f"not ready after {timeout:.0f} s: {waiting}")

    def _not_ready(self) -> str:
        try:
            health = httpx.get(f"{self.airflow_url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return "Airflow api-server"
        unhealthy = [
            name
            for name in HEALTH_COMPONENTS
            if (health.get(name) or {}).get("status") != "healthy"
        ]
        if unhealthy:
            return "Airflow " + ", ".join(unhealthy)
        servers = [(f"model server of {n}", url) for n, url in self.model_server_urls.items()]
        for name, url in [("MLflow", self.mlflow_url), *servers]:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code != 200:
                    return name
            except httpx.HTTPError:
                return name
        return ""

    def token(self) -> str:
        """A JWT for the admin, from the api-server (as the UI's login does)."""
        answer = httpx.post(
            f"{self.airflow_url}/auth/token",
            json={"username": ADMIN, "password": self.password},
            timeout=30,
        )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def api(self) -> httpx.Client:
        """An authenticated client of Airflow's REST API (``/api/v2``)."""
        return httpx.Client(
            base_url=f"{self.airflow_url}/api/v2",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )

    def unpause_dags(self, timeout: float) -> None:
        """Wait until the dag-processor has parsed the project's DAGs, then unpause them."""
        deadline = time.monotonic() + timeout
        with self.api() as api:
            pending = set(self.unpause)
            while pending:
                self._check_alive()
                for dag_id in sorted(pending):
                    answer = api.patch(f"/dags/{dag_id}", json={"is_paused": False})
                    if answer.status_code == 200:
                        pending.discard(dag_id)
                    elif answer.status_code != 404:
                        answer.raise_for_status()
                if pending and time.monotonic() > deadline:
                    raise StackError(f"DAGs not parsed after {timeout:.0f} s: {sorted(pending)}")
                if pending:
                    time.sleep(2)

    def warm_up(self) -> None:
        """Ask the MLOps view once: its first request imports MLflow in the api-server."""
        answer = httpx.get(
            f"{self.airflow_url}/mlops/api/{self.usecases[0]}/status",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=180,
        )
        answer.raise_for_status()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every started process and its children, wait, then SIGKILL what is left."""
        import psutil

        started = [c.process.pid for c in self.components if c.process is not None]
        everything = _descendants(started)
        for component in self.components:
            if component.process is not None and component.running():
                try:
                    os.killpg(component.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        _, alive = psutil.wait_procs(everything, timeout=timeout)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        for component in self.components:
            if component.process is not None:
                component.process.wait(timeout=5)
            if component._log is not None:
                component._log.close()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def banner(self) -> str:
        return "\n".join(
            [
                "",
                "The MLOps platform is up (Ctrl-C stops everything):",
                f"  Airflow       {self.airflow_url}   login: {ADMIN} / {self.password}",
                f"  MLOps view    {self.airflow_url}/mlops/  (also in Airflow's menu: MLOps)",
                f"  MLflow UI     {self.mlflow_url}",
                *(
                    f"  Model server  {url}  {name} (POST /predict, GET /model)"
                    for name, url in self.model_server_urls.items()
                ),
                f"  Unpaused DAGs {len(self.unpause)} of {', '.join(self.usecases)} "
                "(<usecase>__ingest, __materialize, __train, __deploy, __rollback, "
                "__monitor_drift)",
                f"  Logs          {self.log_dir}",
                f"  Password file {self.airflow_home / PASSWORDS_FILE}",
                "",
            ]
        )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    try:
        stack = LocalStack()
    except (StackError, SpecError) as exc:
        print(f"local stack: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _raise_interrupt)
    print(
        f"Starting Airflow, MLflow and {len(stack.usecases)} model server(s) "
        f"({', '.join(stack.usecases)}; logs: {stack.log_dir}) ..."
    )
    try:
        stack.start()
        print(stack.banner(), flush=True)
        while True:
            time.sleep(2)
            stack._check_alive()
    except KeyboardInterrupt:
        print("Stopping ...")
    except StackError as exc:
        print(f"local stack: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    stack.stop()
    print("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
