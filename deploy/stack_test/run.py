"""`make stack-test`: the production stack (docker-compose.yaml) up with podman, driven as a
user drives it, and down again.

Brings the stack up under its own project name with fresh secrets and its own host ports (all
on 127.0.0.1), in the order of its `depends_on` conditions, each service waited for by its own
healthcheck (podman 4.3 neither runs healthchecks nor honours `service_healthy`; this driver
runs `podman healthcheck run` itself). Then, through Airflow's REST API with a token, runs the
lifecycle of generated days: ingest, materialize on their asset events, then `<usecase>__train`
triggered once every day is ingested (as an operator would start the first training: asset
events batch differently from run to run, so the first window may never reach the training
minimum by itself) and the deploy its challenger triggers. The scheduler is restarted while
ingest runs are in flight and must lose none; the model-server container must answer with the
registry's champion before and after a restart, with every prediction logged; Prometheus must
scrape the model servers and the ingestion textfiles. Then the stack goes down with its
volumes: no container, volume, pod, network or published port may remain.

STACK_EXECUTOR=celery runs the same test on CeleryExecutor (the compose profile `celery`) with
two workers and requires tasks to have run on both.

Environment: STACK_EXECUTOR (local|celery), STACK_IMAGES=official (docker-compose.yaml
alone; default: the local images of `make stack-images` through
deploy/local/docker-compose.local.yaml), STACK_PORT_BASE (18000: Airflow on +80, MLflow +50,
the model servers +0 and +1, Prometheus +90, Alertmanager +93), STACK_DAYS (8), STACK_ROWS
(1500), STACK_KEEP=1 (leave the stack up after a failure).
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
# Unpaused once a champion exists: each schedules its newest interval by itself.
NIGHTLY_STAGES = ("score", "monitor_drift")
LOCAL_IMAGES = os.environ.get("STACK_IMAGES", "local") != "official"
EXECUTOR = os.environ.get("STACK_EXECUTOR", "local")
if EXECUTOR not in ("local", "celery"):
    sys.exit(f"STACK_EXECUTOR must be local or celery, not {EXECUTOR!r}")
CELERY_WORKERS = 2


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
    if EXECUTOR == "celery":
        values["AIRFLOW_EXECUTOR"] = "CeleryExecutor"
        values["COMPOSE_PROFILES"] = "celery"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return env_file, values


def containers() -> dict[str, list[dict[str, Any]]]:
    """This project's containers by service name (a scaled service has several)."""
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
    found: dict[str, list[dict[str, Any]]] = {}
    for container in json.loads(listed or "[]"):
        service = (container.get("Labels") or {}).get("com.docker.compose.service")
        if service:
            found.setdefault(service, []).append(container)
    return found


def container_of(service: str) -> str:
    """The name of the service's (first) container."""
    return str(containers()[service][0]["Names"][0])


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


def inspect(container: str, section: str = "State") -> dict[str, Any]:
    """A section of `podman inspect` (its State by default); a missing container's State is
    `{"Status": "missing"}`."""
    out = subprocess.run(
        ["podman", "inspect", "--format", "json", container], capture_output=True, text=True
    )
    if out.returncode != 0:
        return {"Status": "missing"} if section == "State" else {}
    return dict(json.loads(out.stdout)[0][section])


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
    scale = ["--scale", f"airflow-worker={CELERY_WORKERS}"] if "airflow-worker" in services else []
    for layer in dependency_layers(services):
        with clock.stage(f"up: {', '.join(layer)}"):
            layer_scale = scale if "airflow-worker" in layer else []
            run([*compose, "up", "-d", "--no-deps", "--no-build", *layer_scale, *layer], env)
            names = containers()
            for name in layer:
                for replica in names[name]:
                    container = replica["Names"][0]
                    if conditions.get(name) == "service_completed_successfully":
                        wait_completed(name, container)
                    elif not (services[name].get("healthcheck") or {}).get("disable"):
                        wait_healthy(name, services[name], container)
    return services


def restart_service(
    compose: list[str], env: dict[str, str], services: dict[str, Any], name: str
) -> None:
    """`compose restart` (the service's stop_grace_period applies), then its healthcheck."""
    run([*compose, "restart", name], env)
    for replica in containers()[name]:
        wait_healthy(name, services[name], replica["Names"][0])


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

    def task_log(self, dag_id: str, run_id: str, task_id: str, lines: int = 60) -> str:
        """The tail of a task's last try's log, as the UI shows it."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        try_number = self.call("GET", path)["try_number"]
        content = self.call("GET", f"{path}/logs/{try_number}", params={"full_content": "true"})[
            "content"
        ]
        messages = [
            " ".join(str(m.get(k)) for k in ("event", "error_detail") if m.get(k))
            if isinstance(m, dict)
            else str(m)
            for m in content
        ]
        return "\n".join(messages[-lines:])

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


def _raise_on_failure(airflow: Airflow, runs: dict[str, list[dict[str, Any]]]) -> None:
    for stage, stage_runs in runs.items():
        for failed in (r for r in stage_runs if r["state"] == "failed"):
            run_id = failed["dag_run_id"]
            states = airflow.task_states(dag_id(stage), run_id)
            logs = [
                f"--- {task}, its last try's log:\n{airflow.task_log(dag_id(stage), run_id, task)}"
                for task, state in states.items()
                if state == "failed"
            ]
            raise StackFailure(f"{stage} run {run_id} failed: {states}\n" + "\n".join(logs))


class Lifecycle:
    """The use case's lifecycle driven through the REST API, watched until a condition holds."""

    def __init__(self, airflow: Airflow, days: list[dt.date]) -> None:
        self.airflow = airflow
        self.days = days
        self.last_report = 0.0
        self.stages: list[str] = []

    def runs(self) -> dict[str, list[dict[str, Any]]]:
        return {stage: self.airflow.runs(dag_id(stage)) for stage in self.stages}

    def unpause(self, *stages: str) -> None:
        for stage in stages:
            self.airflow.call("PATCH", f"/dags/{dag_id(stage)}", json={"is_paused": False})
            self.stages.append(stage)

    def start(self) -> None:
        """Unpause the lifecycle and trigger ingest for every day but the last (unpausing
        schedules the newest complete interval, the last day, by itself: no catchup)."""
        self.unpause(*LIFECYCLE_STAGES)
        for day in self.days[:-1]:
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            self.airflow.call(
                "POST",
                f"/dags/{dag_id('ingest')}/dagRuns",
                json={
                    "dag_run_id": f"stack_test__{day.isoformat()}",
                    "logical_date": start.isoformat(),
                    "data_interval_start": start.isoformat(),
                    "data_interval_end": (start + dt.timedelta(days=1)).isoformat(),
                },
            )

    def wait(self, what: str, holds: Any, timeout: float) -> dict[str, list[dict[str, Any]]]:
        """Poll the runs until `holds(runs)` is true; any failed run fails the test."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            _raise_on_failure(self.airflow, runs)
            if holds(runs):
                return runs
            if time.monotonic() - self.last_report > 60:
                counts = {stage: sorted(r["state"] for r in rs) for stage, rs in runs.items()}
                print(f"[stack-test]   waiting for {what}: {counts}", flush=True)
                self.last_report = time.monotonic()
            time.sleep(5)
        raise StackFailure(f"timed out waiting for {what}")

    def ingest_in_flight(self, runs: dict[str, list[dict[str, Any]]]) -> bool:
        states = [r["state"] for r in runs["ingest"]]
        return "success" in states and any(s in ("queued", "running") for s in states)

    def all_ingested(self, runs: dict[str, list[dict[str, Any]]]) -> bool:
        done = [r for r in runs["ingest"] if r["state"] == "success"]
        return len(done) >= len(self.days)

    def trigger_training(self) -> str:
        run_id = f"stack_test__train__{self.days[-1].isoformat()}"
        self.airflow.call(
            "POST",
            f"/dags/{dag_id('train')}/dagRuns",
            json={
                "dag_run_id": run_id,
                "logical_date": None,
                "conf": {
                    "window_end": self.days[-1].isoformat(),
                    "reason": "stack-test: every generated day ingested",
                },
            },
        )
        return run_id

    def scored_and_checked(self, runs: dict[str, list[dict[str, Any]]]) -> bool:
        return all(any(r["state"] == "success" for r in runs[s]) for s in NIGHTLY_STAGES)

    def scoring_result(self, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """The score task's result (its XCom) of the first successful score run."""
        run_id = next(r["dag_run_id"] for r in runs["score"] if r["state"] == "success")
        entry = self.airflow.call(
            "GET",
            f"/dags/{dag_id('score')}/dagRuns/{run_id}/taskInstances/score/xcomEntries/"
            "return_value",
        )
        value = entry["value"]
        return dict(json.loads(value) if isinstance(value, str) else value)

    def promoted(self, runs: dict[str, list[dict[str, Any]]]) -> bool:
        for deployed in runs["deploy"]:
            if deployed["state"] == "success":
                states = self.airflow.task_states(dag_id("deploy"), deployed["dag_run_id"])
                if states.get("promote") != "success":
                    raise StackFailure(f"the deploy run promoted nothing: {states}")
                return True
        return False


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


def logged_predictions(container: str, env: dict[str, str], version: str) -> int:
    """The champion's predictions the model server logged today, counted as the drift check
    reads them (`monitoring.drift.logged_predictions`, run in an Airflow container)."""
    script = (
        "import datetime as dt, sys\n"
        "from mlops_pipeline.config import get_settings\n"
        "from mlops_pipeline.monitoring.drift import logged_predictions\n"
        f"settings = get_settings().for_usecase({USECASE!r})\n"
        "today = dt.datetime.now(dt.UTC).date()\n"
        "print(len(logged_predictions(settings, today, sys.argv[1])))\n"
    )
    return int(run(["podman", "exec", container, "python", "-c", script, version], env).strip())


def check_workers(airflow: Airflow, runs: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Every Celery worker ran some of the lifecycle's tasks (hostname of each task instance)."""
    workers = {
        inspect(c["Names"][0], "Config").get("Hostname", c["Names"][0]): c["Names"][0]
        for c in containers()["airflow-worker"]
    }
    tasks: dict[str, int] = dict.fromkeys(workers.values(), 0)
    for stage, stage_runs in runs.items():
        for dag_run in stage_runs:
            instances = airflow.call(
                "GET", f"/dags/{dag_id(stage)}/dagRuns/{dag_run['dag_run_id']}/taskInstances"
            )["task_instances"]
            for instance in instances:
                worker = workers.get(instance.get("hostname") or "")
                if worker:
                    tasks[worker] += 1
    if len(workers) != CELERY_WORKERS or not all(tasks.values()):
        raise StackFailure(f"tasks per Celery worker {tasks} (hostnames {sorted(workers)})")
    return tasks


def check_prometheus(timeout: float = 180) -> dict[str, Any]:
    """Prometheus scrapes every model server and the textfiles: the served predictions, the
    ingested days' quarantine rate and the drift check's share are queryable."""
    base = f"http://127.0.0.1:{PORTS['PROMETHEUS_PORT']}/api/v1"
    wanted = ("mlops_predictions_total", "mlops_quarantine_rate", "mlops_drift_share")
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


def exercise(
    compose: list[str],
    env: dict[str, str],
    values: dict[str, str],
    services: dict[str, Any],
    days: list[dt.date],
    clock: Clock,
) -> None:
    """What a user does with a running stack, each step a timed stage."""
    with clock.stage(f"generate {DAYS} days of {ROWS} rows"):
        generate_days(container_of("airflow-apiserver"), days, env)
    airflow = Airflow(
        f"http://127.0.0.1:{PORTS['AIRFLOW_PORT']}",
        values["AIRFLOW_ADMIN_USERNAME"],
        values["AIRFLOW_ADMIN_PASSWORD"],
    )
    lifecycle = Lifecycle(airflow, days)
    with clock.stage("ingest every day, restarting the scheduler mid-run"):
        wait_for_dags(airflow)
        lifecycle.start()
        runs = lifecycle.wait("ingest runs in flight", lifecycle.ingest_in_flight, 600)
        in_flight = [r["dag_run_id"] for r in runs["ingest"] if r["state"] != "success"]
        print(f"[stack-test]   restarting the scheduler; ingest runs in flight: {in_flight}")
        restart_service(compose, env, services, "airflow-scheduler")
        lifecycle.wait(f"all {DAYS} ingest runs", lifecycle.all_ingested, 900)
    with clock.stage("train (triggered) and deploy (on its challenger)"):
        train_run = lifecycle.trigger_training()
        print(f"[stack-test]   triggered {dag_id('train')} run {train_run}")
        runs = lifecycle.wait("a deploy run that promoted", lifecycle.promoted, 1200)
        print(f"[stack-test]   DAG runs: { {s: len(rs) for s, rs in runs.items()} }")
    with clock.stage("batch scoring and the drift check (their scheduled runs)"):
        lifecycle.unpause(*NIGHTLY_STAGES)
        runs = lifecycle.wait("score and drift runs", lifecycle.scored_and_checked, 900)
        scored = lifecycle.scoring_result(runs)
        if not scored.get("rows") or scored.get("table_rows") != scored["rows"]:
            raise StackFailure(f"batch scoring wrote {scored} (Parquet and Postgres rows differ)")
        print(f"[stack-test]   scored {scored['date']}: {scored['rows']} rows, also in Postgres")
    if EXECUTOR == "celery":
        with clock.stage(f"tasks ran on all {CELERY_WORKERS} Celery workers"):
            print(f"[stack-test]   tasks per worker: {check_workers(airflow, runs)}")
    with clock.stage("model server answers with the champion, before and after a restart"):
        champion = champion_version(values)
        reader = container_of("airflow-apiserver")
        prediction = check_model_server(champion)
        logged = logged_predictions(reader, env, champion)
        restart_service(compose, env, services, "model-server-churn")
        check_model_server(champion)
        after = logged_predictions(reader, env, champion)
        if after != logged + len(prediction["predictions"]):
            raise StackFailure(
                f"predictions logged: {logged} before the restart, {after} after one more request"
            )
        first = prediction["predictions"][:1]
        print(f"[stack-test]   champion v{champion}: {first}; {after} predictions logged")
    with clock.stage("Prometheus has the model servers and the drift and ingestion textfiles"):
        print(f"[stack-test]   series: {check_prometheus()}")


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
            exercise(compose, env, values, services, days, clock)
            failed = False
        finally:
            if failed and os.environ.get("STACK_KEEP") == "1":
                print(f"[stack-test] left up (STACK_KEEP=1): {' '.join(compose)} down -v")
            else:
                if failed:
                    for name, replicas in sorted(containers().items()):
                        for container in replicas:
                            logs = run(
                                ["podman", "logs", "--tail", "15", container["Names"][0]],
                                env,
                                False,
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
