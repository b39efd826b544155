"""What the local stack runs: Airflow's components, the MLflow UI and a model server per use
case; when it counts as up (every component healthy, the DAGs parsed, paused or unpaused); its
banner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.platform.local_stack import StackError
from mlops_pipeline.platform.local_stack.environment import (
    ADMIN,
    HOST,
    PASSWORDS_FILE,
    REPO,
    SCHEDULED_DAGS,
    Ports,
    admin_password,
    airflow_environment,
    paused_and_unpaused,
)
from mlops_pipeline.platform.local_stack.processes import (
    Component,
    check_alive,
    exposed_sockets,
    kill_all,
    stop_all,
)
from mlops_pipeline.usecases.loader import declared_usecases

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Airflow's log server (`serve-logs`, started by the scheduler and the triggerer) listens on
# every interface, with no setting for its host. Here every component shares one log folder,
# which the api-server reads directly, so the log servers are not started at all.
WITHOUT_LOG_SERVER = {"scheduler", "triggerer"}
# /api/v2/monitor/health names these; the api-server answering is the fourth.
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


# See ``LocalStack.warm_up``.
WARM_UP_ATTEMPTS = 3


class LocalStack:
    """The processes of the local platform. ``start()`` returns when everything answers;
    ``stop()`` (also on leaving the ``with`` block) ends them all."""

    def __init__(
        self,
        settings: Settings | None = None,
        ports: Ports | None = None,
        environ: Mapping[str, str] | None = None,
        unpause: Iterable[str] | None = None,
        pause: Iterable[str] = (),
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
        environ = os.environ if environ is None else environ
        if unpause is None:
            self.pause, self.unpause = paused_and_unpaused(self.usecases, environ)
        else:
            self.pause, self.unpause = list(pause), list(unpause)
        self.log_dir = log_dir or self.settings.home / "local_stack" / "logs"
        bin_dir = Path(sys.executable).parent
        airflow = str(bin_dir / "airflow")
        self.components = [
            Component(
                name,
                [airflow, name, *(["--skip-serve-logs"] if name in WITHOUT_LOG_SERVER else [])],
                self.log_dir / f"{name}.log",
            )
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
            component.start(child_env, cwd=REPO)
        try:
            self.wait_ready(timeout)
            self.check_loopback()
            self.set_paused(timeout)
            self.warm_up()
        except BaseException:
            self.stop()
            raise

    def check_alive(self) -> None:
        """``StackError`` when a component has exited."""
        check_alive(self.components)

    def check_loopback(self) -> None:
        """``StackError`` when a component listens beyond 127.0.0.1 (the stack is for this
        machine only)."""
        exposed = exposed_sockets(self.components)
        if exposed:
            raise StackError("listening beyond the loopback interface: " + ", ".join(exposed))

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = "starting"
        while time.monotonic() < deadline:
            self.check_alive()
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

    def set_paused(self, timeout: float) -> None:
        """Wait until the dag-processor has parsed the project's DAGs, then pause or unpause
        each (the scheduled ones are paused again on every start: what runs is what the banner
        says)."""
        deadline = time.monotonic() + timeout
        paused = {dag_id: True for dag_id in self.pause} | {d: False for d in self.unpause}
        with self.api() as api:
            pending = set(paused)
            while pending:
                self.check_alive()
                for dag_id in sorted(pending):
                    answer = api.patch(f"/dags/{dag_id}", json={"is_paused": paused[dag_id]})
                    if answer.status_code == 200:
                        pending.discard(dag_id)
                    elif answer.status_code != 404:
                        answer.raise_for_status()
                if pending and time.monotonic() > deadline:
                    raise StackError(f"DAGs not parsed after {timeout:.0f} s: {sorted(pending)}")
                if pending:
                    time.sleep(2)

    def warm_up(self) -> None:
        """Ask the MLOps view once: its first request imports MLflow and Feast in the
        api-server. CPython 3.11 before 3.11.9 can fail that first import with "AST constructor
        recursion depth mismatch" when another thread compiles at the same time (gh-106905;
        Feast's typeguard decorators compile at import), so a 5xx is asked again, twice."""
        for attempt in range(WARM_UP_ATTEMPTS):
            answer = httpx.get(
                f"{self.airflow_url}/mlops/api/{self.usecases[0]}/status",
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=180,
            )
            if answer.status_code < 500 or attempt == WARM_UP_ATTEMPTS - 1:
                break
            print(f"MLOps view warm-up answered {answer.status_code}; asking again", flush=True)
        answer.raise_for_status()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every started process and its children, wait, then SIGKILL what is left
        (idempotent, and no stop signal interrupts it)."""
        stop_all(self.components, timeout)

    def kill(self) -> None:
        """SIGKILL every started process and its children now."""
        kill_all(self.components)

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def banner(self) -> str:
        return "\n".join(
            [
                "",
                "The MLOps platform is up (Ctrl-C or SIGTERM stops everything):",
                f"  Airflow       {self.airflow_url}   login: {ADMIN} / {self.password}",
                f"  MLOps view    {self.airflow_url}/mlops/  (also in Airflow's menu: MLOps)",
                f"  MLflow UI     {self.mlflow_url}",
                *(
                    f"  Model server  {url}  {name} (POST /predict, GET /model)"
                    for name, url in self.model_server_urls.items()
                ),
                f"  Unpaused DAGs {len(self.unpause)} ({_stages(self.unpause)})",
                *(
                    [
                        f"  Paused DAGs   {len(self.pause)} on a clock ({_stages(self.pause)}): "
                        "the demo's days are past;",
                        "                unpause them in the UI, or start with "
                        f"{SCHEDULED_DAGS}=unpaused make airflow",
                    ]
                    if self.pause
                    else []
                ),
                f"  Logs          {self.log_dir}",
                f"  Password file {self.airflow_home / PASSWORDS_FILE}",
                "",
            ]
        )


def _stages(dag_ids: Iterable[str]) -> str:
    """``<usecase>__ingest, __monitor_drift``: the stages of ``dag_ids``, in their order."""
    stages = list(dict.fromkeys(dag_id.split("__", 1)[-1] for dag_id in dag_ids))
    return "<usecase>" + ", ".join(f"__{stage}" for stage in stages)
