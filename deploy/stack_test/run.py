"""`make stack-test`: the production stack (docker-compose.yaml) up with podman, driven as a
user drives it, and down again.

Brings the stack up under its own project name with fresh secrets and its own host ports (all
on 127.0.0.1), in the order of its `depends_on` conditions, each service waited for by its own
healthcheck (podman 4.3 neither runs healthchecks nor honours `service_healthy`; this driver
runs `podman healthcheck run` itself). Then, through Airflow's REST API with a token, runs the
lifecycle of generated days (ingest, then what their asset events trigger: materialize, train,
deploy), checks that the model-server container answers with the registry's champion and
that Prometheus scrapes the model servers and the ingestion textfiles, and takes the stack
down with its volumes: no container, volume, pod, network or published port may remain.

Environment: STACK_IMAGES=official (docker-compose.yaml alone; default: the local images of
`make stack-images` through deploy/local/docker-compose.local.yaml), STACK_PORT_BASE (18000:
Airflow on +80, MLflow +50, the model servers +0 and +1, Prometheus +90, Alertmanager +93),
STACK_DAYS (8), STACK_ROWS (1500), STACK_KEEP=1 (leave the stack up after a failure).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
USECASE = "churn"
# podman-compose runs the services under `<project>_<service>_<n>`; this project is the test's
# own, so a user's stack on this machine is never touched.
PROJECT = os.environ.get("STACK_PROJECT", "mlops-stack-test")
PORT_BASE = int(os.environ.get("STACK_PORT_BASE", "18000"))
PORTS = {
    "AIRFLOW_PORT": PORT_BASE + 80,
    "MLFLOW_PORT": PORT_BASE + 50,
    "CHURN_MODEL_SERVER_PORT": PORT_BASE,
    "STORE_DEMAND_MODEL_SERVER_PORT": PORT_BASE + 1,
    "PROMETHEUS_PORT": PORT_BASE + 90,
    "GRAFANA_PORT": PORT_BASE + 30,
    "ALERTMANAGER_PORT": PORT_BASE + 93,
}
DAYS = int(os.environ.get("STACK_DAYS", "8"))
ROWS = int(os.environ.get("STACK_ROWS", "1500"))
LIFECYCLE_STAGES = ("ingest", "materialize", "train", "deploy")
LOCAL_IMAGES = os.environ.get("STACK_IMAGES", "local") != "official"


class StackFailure(RuntimeError):
    """The stack did not do what a user of it would expect."""


class Clock:
    """Stage times, printed as each stage ends and together at the end."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.stages: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Generator[None, None, None]:
        started = time.monotonic()
        print(f"[stack-test] {name} ...", flush=True)
        try:
            yield
        finally:
            seconds = time.monotonic() - started
            self.stages.append((name, seconds))
            print(f"[stack-test] {name}: {seconds:.0f}s", flush=True)

    def summary(self) -> str:
        lines = [f"  {name:<40} {seconds:6.0f}s" for name, seconds in self.stages]
        lines.append(f"  {'total':<40} {time.monotonic() - self.started:6.0f}s")
        return "\n".join(lines)


def compose_files() -> list[str]:
    files = [str(REPO / "docker-compose.yaml")]
    if LOCAL_IMAGES:
        files.append(str(REPO / "deploy/local/docker-compose.local.yaml"))
    return files


def compose_command(env_file: Path) -> list[str]:
    tool = shutil.which("podman-compose") or str(Path(sys.executable).parent / "podman-compose")
    command = [tool, "--project-name", PROJECT, "--env-file", str(env_file)]
    for file in compose_files():
        command += ["-f", file]
    return command


def run(command: list[str], env: dict[str, str], check: bool = True) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    if check and result.returncode != 0:
        raise StackFailure(f"{' '.join(command[:6])} ... failed:\n{result.stderr[-4000:]}")
    return result.stdout


def write_env(directory: Path) -> tuple[Path, dict[str, str]]:
    """Fresh secrets (what `make secrets` writes) with this test's ports."""
    from mlops_pipeline.platform import secrets_env

    env_file = directory / ".env"
    secrets_env.write_env(REPO / ".env.example", env_file)
    values = dict(
        line.split("=", 1)
        for line in env_file.read_text().splitlines()
        if line and not line.startswith("#")
    )
    values |= {name: str(port) for name, port in PORTS.items()}
    values["BIND_ADDRESS"] = "127.0.0.1"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return env_file, values


def containers() -> dict[str, dict[str, Any]]:
    """This project's containers by service name."""
    listed = subprocess.run(
        [
            "podman",
            "ps",
            "-a",
            "--format",
            "json",
            "--filter",
            f"label=io.podman.compose.project={PROJECT}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for container in json.loads(listed or "[]"):
        service = (container.get("Labels") or {}).get("com.docker.compose.service")
        if service:
            found[service] = container
    return found


def dependency_layers(services: dict[str, Any]) -> list[list[str]]:
    """The services in the order their `depends_on` allows: each layer only needs earlier ones."""
    remaining = {name: set(spec.get("depends_on") or {}) for name, spec in services.items()}
    layers: list[list[str]] = []
    while remaining:
        ready = sorted(
            name for name, needs in remaining.items() if not needs - set().union(*layers)
        )
        if not ready:
            raise StackFailure(f"depends_on has a cycle among {sorted(remaining)}")
        layers.append(ready)
        for name in ready:
            del remaining[name]
    return layers


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    text = str(value)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def wait_healthy(name: str, spec: dict[str, Any], container: str) -> None:
    """Run the service's own healthcheck until it passes, within what it allows itself:
    its start period and its retries at its interval (and never under seven minutes, this
    machine's cores being shared)."""
    check = spec.get("healthcheck") or {}
    interval = min(_seconds(check.get("interval"), 30), 5)
    budget = _seconds(check.get("start_period"), 0) + _seconds(check.get("interval"), 30) * int(
        check.get("retries", 3)
    )
    deadline = time.monotonic() + max(budget, 420)
    while True:
        result = subprocess.run(
            ["podman", "healthcheck", "run", container], capture_output=True, text=True
        )
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            logs = run(["podman", "logs", "--tail", "40", container], os.environ.copy(), False)
            raise StackFailure(
                f"{name} never became healthy: {result.stdout}{result.stderr}\n{logs}"
            )
        time.sleep(interval)


def inspect(container: str) -> dict[str, Any]:
    out = subprocess.run(
        ["podman", "inspect", "--format", "json", container], capture_output=True, text=True
    )
    if out.returncode != 0:
        return {"Status": "missing"}
    return dict(json.loads(out.stdout)[0]["State"])


def wait_completed(name: str, container: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = inspect(container)
        if state["Status"] == "exited" and state.get("ExitCode") == 0:
            return
        time.sleep(3)
    logs = run(["podman", "logs", "--tail", "60", container], os.environ.copy(), False)
    raise StackFailure(f"{name} did not complete successfully:\n{logs}")


def bring_up(compose: list[str], env: dict[str, str], clock: Clock) -> dict[str, Any]:
    merged = yaml.safe_load(run([*compose, "config"], env))
    services = merged["services"]
    conditions: dict[str, str] = {}
    for spec in services.values():
        for dependency, rule in (spec.get("depends_on") or {}).items():
            wanted = (rule or {}).get("condition", "service_started")
            if conditions.get(dependency) != "service_healthy":
                conditions[dependency] = wanted
    for layer in dependency_layers(services):
        with clock.stage(f"up: {', '.join(layer)}"):
            run([*compose, "up", "-d", "--no-deps", "--no-build", *layer], env)
            names = containers()
            for name in layer:
                container = names[name]["Names"][0]
                if conditions.get(name) == "service_completed_successfully":
                    wait_completed(name, container)
                elif not (services[name].get("healthcheck") or {}).get("disable"):
                    wait_healthy(name, services[name], container)
    return services


class Airflow:
    """Airflow's REST API, as a user reaches it: a token from /auth/token, then /api/v2."""

    def __init__(self, base: str, username: str, password: str) -> None:
        answer = httpx.post(
            f"{base}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        if answer.status_code != 201:
            raise StackFailure(f"no token from Airflow: {answer.status_code} {answer.text}")
        token = answer.json()["access_token"]
        self.http = httpx.Client(
            base_url=f"{base}/api/v2",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(method, path, **kwargs)
        if answer.status_code >= 300:
            raise StackFailure(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        instances = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {t["task_id"]: t["state"] for t in instances["task_instances"]}


def dag_id(stage: str) -> str:
    from mlops_pipeline.orchestration.assets import SEPARATOR

    return f"{USECASE}{SEPARATOR}{stage}"


def generate_days(container: str, days: list[dt.date], env: dict[str, str]) -> None:
    """The days' landing files, written into the stack's data volume by the platform's own
    generator (as the upstream system would drop them)."""
    script = (
        "import datetime as dt, sys\n"
        "from mlops_pipeline.config import get_settings\n"
        "from mlops_pipeline.data.datagen import generate_day\n"
        f"settings = get_settings().for_usecase({USECASE!r})\n"
        "for day in sys.argv[2:]:\n"
        "    generate_day(settings, dt.date.fromisoformat(day), int(sys.argv[1]), "
        "file_format='parquet')\n"
    )
    dates = [day.isoformat() for day in days]
    run(["podman", "exec", container, "python", "-c", script, str(ROWS), *dates], env)


def wait_for_dags(airflow: Airflow, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    wanted = {dag_id(stage) for stage in LIFECYCLE_STAGES}
    while time.monotonic() < deadline:
        dags = airflow.call("GET", "/dags", params={"dag_id_pattern": USECASE, "limit": 100})
        if wanted <= {d["dag_id"] for d in dags["dags"]}:
            return
        time.sleep(5)
    raise StackFailure(f"the DAG processor never parsed {sorted(wanted)}")


def run_lifecycle(airflow: Airflow, days: list[dt.date], timeout: float) -> dict[str, Any]:
    """Unpause the use case's lifecycle and trigger its ingest for each day; the scheduler
    runs the rest on the asset events. Done when a deploy run has promoted a model."""
    for stage in LIFECYCLE_STAGES:
        airflow.call("PATCH", f"/dags/{dag_id(stage)}", json={"is_paused": False})
    # Unpausing schedules the newest complete interval (the last day) by itself: no catchup.
    for day in days[:-1]:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        airflow.call(
            "POST",
            f"/dags/{dag_id('ingest')}/dagRuns",
            json={
                "dag_run_id": f"stack_test__{day.isoformat()}",
                "logical_date": start.isoformat(),
                "data_interval_start": start.isoformat(),
                "data_interval_end": (start + dt.timedelta(days=1)).isoformat(),
            },
        )
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while time.monotonic() < deadline:
        runs = {stage: airflow.runs(dag_id(stage)) for stage in LIFECYCLE_STAGES}
        failed = [
            (stage, r["dag_run_id"])
            for stage, rs in runs.items()
            for r in rs
            if r["state"] == "failed"
        ]
        if failed:
            stage, run_id = failed[0]
            states = airflow.task_states(dag_id(stage), run_id)
            raise StackFailure(f"{stage} run {run_id} failed: {states}")
        for deployed in runs["deploy"]:
            if deployed["state"] == "success":
                states = airflow.task_states(dag_id("deploy"), deployed["dag_run_id"])
                if states.get("promote") != "success":
                    raise StackFailure(f"the deploy run promoted nothing: {states}")
                return {"runs": runs, "deploy": states}
        if time.monotonic() - last_report > 60:
            counts = {stage: sorted(r["state"] for r in rs) for stage, rs in runs.items()}
            print(f"[stack-test]   runs so far: {counts}", flush=True)
            last_report = time.monotonic()
        time.sleep(10)
    raise StackFailure("no deploy run promoted a model in time")


def champion_version(env: dict[str, str]) -> str:
    from mlops_pipeline.usecases import load_usecase

    spec = load_usecase(REPO / "usecases" / USECASE)
    answer = httpx.get(
        f"http://127.0.0.1:{PORTS['MLFLOW_PORT']}/api/2.0/mlflow/registered-models/alias",
        params={"name": spec.model_name, "alias": "champion"},
        auth=(env["MLFLOW_ADMIN_USERNAME"], env["MLFLOW_ADMIN_PASSWORD"]),
        timeout=30,
    )
    if answer.status_code != 200:
        raise StackFailure(f"MLflow has no champion: {answer.status_code} {answer.text}")
    return str(answer.json()["model_version"]["version"])


def check_model_server(champion: str, timeout: float = 300) -> dict[str, Any]:
    """The model-server container loads the champion by itself and predicts with it."""
    from mlops_pipeline.usecases import load_usecase

    spec = load_usecase(REPO / "usecases" / USECASE)
    base = f"http://127.0.0.1:{PORTS['CHURN_MODEL_SERVER_PORT']}"
    deadline = time.monotonic() + timeout
    ready: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"{base}/ready", timeout=10).json()
            if ready.get("ready") and str(ready.get("version")) == champion:
                break
        time.sleep(5)
    else:
        raise StackFailure(f"the model server never served champion v{champion}: {ready}")
    body = {"entities": {spec.entity.key: [1, 2, 3]}}
    answer = httpx.post(f"{base}/predict", json=body, timeout=30)
    if answer.status_code != 200:
        raise StackFailure(f"/predict: {answer.status_code} {answer.text}")
    prediction = answer.json()
    if str(prediction["model_version"]) != champion or not prediction["predictions"]:
        raise StackFailure(f"/predict did not answer with champion v{champion}: {prediction}")
    return prediction


def check_prometheus(timeout: float = 180) -> dict[str, Any]:
    """Prometheus scrapes every model server and the textfiles: the served predictions and
    the ingested days' quarantine rate are queryable."""
    base = f"http://127.0.0.1:{PORTS['PROMETHEUS_PORT']}/api/v1"
    wanted = ("mlops_predictions_total", "mlops_quarantine_rate")
    deadline = time.monotonic() + timeout
    found: dict[str, Any] = {}
    down: list[str] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            targets = httpx.get(f"{base}/targets", timeout=10).json()["data"]["activeTargets"]
            down = [t["scrapeUrl"] for t in targets if t["health"] != "up"]
            for metric in wanted:
                answer = httpx.get(f"{base}/query", params={"query": metric}, timeout=10)
                found[metric] = answer.json()["data"]["result"]
            if not down and all(found.get(m) for m in wanted):
                return {m: len(found[m]) for m in wanted}
        time.sleep(5)
    raise StackFailure(f"Prometheus: targets down {down}, series {found}")


def bring_down(compose: list[str], env: dict[str, str]) -> None:
    run([*compose, "down", "-v", "--remove-orphans"], env, check=False)
    left = containers()
    volumes = run(
        ["podman", "volume", "ls", "-q", "--filter", f"label=io.podman.compose.project={PROJECT}"],
        env,
    ).split()
    pods = run(["podman", "pod", "ls", "-q", "--filter", f"name=pod_{PROJECT}"], env).split()
    networks = [n for n in run(["podman", "network", "ls", "-q"], env).split() if PROJECT in n]
    listening = [port for port in PORTS.values() if _listening(port)]
    if left or volumes or pods or networks or listening:
        raise StackFailure(
            f"compose down -v left containers {sorted(left)}, volumes {volumes}, pods {pods}, "
            f"networks {networks}, ports {listening}"
        )


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    clock = Clock()
    busy = [port for port in PORTS.values() if _listening(port)]
    if busy:
        print(f"[stack-test] host ports already in use: {busy} (set STACK_PORT_BASE)")
        return 2
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=DAYS - i) for i in range(DAYS)]
    # The secrets stay on disk only while the stack runs (or is kept up to look at).
    tmp = tempfile.mkdtemp(prefix="stack-test-")
    failed = True
    try:
        env_file, values = write_env(Path(tmp))
        env = {**os.environ, **values}
        compose = compose_command(env_file)
        try:
            with clock.stage("compose down -v (leftovers)"):
                bring_down(compose, env)
            services: dict[str, Any] = {}
            with clock.stage("up until every service is healthy"):
                services = bring_up(compose, env, clock)
            print(f"[stack-test] services: {sorted(services)}")
            apiserver = containers()["airflow-apiserver"]["Names"][0]
            with clock.stage(f"generate {DAYS} days of {ROWS} rows"):
                generate_days(apiserver, days, env)
            with clock.stage("lifecycle through Airflow's REST API"):
                airflow = Airflow(
                    f"http://127.0.0.1:{PORTS['AIRFLOW_PORT']}",
                    values["AIRFLOW_ADMIN_USERNAME"],
                    values["AIRFLOW_ADMIN_PASSWORD"],
                )
                wait_for_dags(airflow)
                outcome = run_lifecycle(airflow, days, timeout=1200)
                summary = {s: len(rs) for s, rs in outcome["runs"].items()}
                print(f"[stack-test]   DAG runs: {summary}; deploy: {outcome['deploy']}")
            with clock.stage("model server answers with the champion"):
                champion = champion_version(values)
                prediction = check_model_server(champion)
                print(f"[stack-test]   champion v{champion}: {prediction['predictions'][:1]}")
            with clock.stage("Prometheus has the model servers and the textfiles"):
                print(f"[stack-test]   series: {check_prometheus()}")
            failed = False
        finally:
            if failed and os.environ.get("STACK_KEEP") == "1":
                print(f"[stack-test] left up (STACK_KEEP=1): {' '.join(compose)} down -v")
            else:
                if failed:
                    for name, container in sorted(containers().items()):
                        logs = run(
                            ["podman", "logs", "--tail", "15", container["Names"][0]], env, False
                        )
                        print(f"----- {name} ({container.get('State')})\n{logs}")
                with clock.stage("compose down -v"):
                    bring_down(compose, env)
            print("[stack-test] stage times:\n" + clock.summary(), flush=True)
    finally:
        if not (failed and os.environ.get("STACK_KEEP") == "1"):
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StackFailure as failure:
        print(f"[stack-test] FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
