"""``make airflow``'s configuration: login always on, secrets generated once and private."""

from __future__ import annotations

import json
import stat

import pytest

from mlops_pipeline.platform.local_stack import StackError
from mlops_pipeline.platform.local_stack.environment import (
    DAG_STAGES,
    PASSWORDS_FILE,
    SCHEDULED_DAGS,
    SCHEDULED_STAGES,
    SECRETS_FILE,
    Ports,
    admin_password,
    airflow_environment,
    paused_and_unpaused,
    project_dag_ids,
)
from mlops_pipeline.platform.local_stack.stack import LocalStack


def test_the_login_cannot_be_switched_off(settings, tmp_path):
    environ = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    }
    with pytest.raises(StackError, match="login off"):
        airflow_environment(settings, Ports(), environ)


def test_the_admin_password_is_generated_once_and_private(tmp_path):
    password = admin_password(tmp_path)
    assert len(password) >= 24 and admin_password(tmp_path) == password
    path = tmp_path / PASSWORDS_FILE
    assert json.loads(path.read_text()) == {"admin": password}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin_password(tmp_path / "elsewhere") != password


def test_environment_forces_auth_and_local_binding_and_keeps_other_choices(settings, tmp_path):
    airflow_home = tmp_path / "airflow"
    ports = Ports.from_env({"AIRFLOW_PORT": "18081", "MODEL_SERVER_PORT": "18001"})
    assert (ports.airflow, ports.mlflow, ports.model_server) == (18081, 5000, 18001)
    environ = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__AUTH_MANAGER": "some.other.AuthManager",
        "AIRFLOW__API__HOST": "0.0.0.0",
        "AIRFLOW__CORE__PARALLELISM": "2",
    }
    env = airflow_environment(settings, ports, environ, usecases=["churn"])
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(
        airflow_home / PASSWORDS_FILE
    )
    assert (env["AIRFLOW__API__HOST"], env["AIRFLOW__API__PORT"]) == ("127.0.0.1", "18081")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18081/execution/"
    assert env["MLOPS_SERVING_URL"] == "http://127.0.0.1:18001"
    assert env["MLOPS_MLFLOW_UI_URL"] == "http://127.0.0.1:5000"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2", "a variable set by the user wins"
    shared = json.loads((airflow_home / SECRETS_FILE).read_text())
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == shared["jwt_secret"]
    assert len(shared["jwt_secret"]) >= 64
    assert env["MLOPS_USECASES_DIR"] == str(settings.usecases_dir)
    again = airflow_environment(settings, ports, environ, usecases=["churn"])
    assert again["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_every_dag_of_every_use_case_is_named():
    from mlops_pipeline.orchestration.factory import STAGES

    assert DAG_STAGES == STAGES, "the stages are the factory's"
    assert {"churn__train", "churn__deploy", "churn__monitor_drift"} <= set(project_dag_ids())
    assert project_dag_ids(["b", "a"])[:2] == ["a__ingest", "a__materialize"]
    assert len(project_dag_ids(["b", "a"])) == 2 * len(DAG_STAGES)


def test_dags_on_a_clock_stay_paused_unless_asked(settings, tmp_path):
    """The demo's days are past: a scheduled ingest would wait hours for a file that never
    lands and the drift check would fail at once. What runs on events or by hand is unpaused
    (the UI's trigger of a paused DAG would only queue)."""
    paused, unpaused = paused_and_unpaused(["b", "a"], {})
    assert paused == [f"{u}__{s}" for u in "ab" for s in SCHEDULED_STAGES]
    assert "a__train" in unpaused and "b__deploy" in unpaused
    assert sorted(paused + unpaused) == sorted(project_dag_ids(["a", "b"]))
    assert paused_and_unpaused(["a"], {SCHEDULED_DAGS: "unpaused"}) == ([], project_dag_ids(["a"]))
    with pytest.raises(StackError, match="'paused' .* or 'unpaused'"):
        paused_and_unpaused(["a"], {SCHEDULED_DAGS: "on"})
    stack = LocalStack(settings, Ports(), {"AIRFLOW_HOME": str(tmp_path / "airflow")})
    assert set(stack.pause) == set(project_dag_ids(stack.usecases, SCHEDULED_STAGES))
    assert f"{SCHEDULED_DAGS}=unpaused make airflow" in stack.banner()


def test_the_paused_stages_are_the_factorys_dags_on_a_clock():
    from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable

    from mlops_pipeline.orchestration.factory import build_dags

    clock = (CronDataIntervalTimetable, CronTriggerTimetable)
    dags = build_dags("churn")
    on_a_clock = {
        d.split("__", 1)[1] for d, dag in dags.items() if isinstance(dag.timetable, clock)
    }
    assert on_a_clock == set(SCHEDULED_STAGES)


def test_one_model_server_per_use_case_on_its_own_port(settings, tmp_path):
    ports = Ports.from_env({"MODEL_SERVER_PORT": "18100"})
    assert ports.model_servers(["zeta", "alpha"]) == {"alpha": 18100, "zeta": 18101}
    stack = LocalStack(settings, ports, {"AIRFLOW_HOME": str(tmp_path / "airflow")})
    servers = [c for c in stack.components if c.name.startswith("model-server")]
    assert [c.name for c in servers] == [f"model-server-{n}" for n in stack.usecases]
    for component, (name, port) in zip(servers, stack.model_server_ports.items(), strict=True):
        assert component.command[-6:] == [
            "--usecase",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    assert len(set(stack.model_server_ports.values())) == len(stack.usecases)
    assert all(f"{url}  {name}" in stack.banner() for name, url in stack.model_server_urls.items())


def test_the_smoke_test_url_is_set_only_for_one_model_server(settings, tmp_path):
    environ = {"AIRFLOW_HOME": str(tmp_path / "airflow")}
    ports = Ports.from_env({"MODEL_SERVER_PORT": "18001"})
    assert "MLOPS_SERVING_URL" not in airflow_environment(settings, ports, environ, ["a", "b"])
    given = {**environ, "MLOPS_SERVING_URL": "http://model-server-{usecase}:8080"}
    assert airflow_environment(settings, ports, given, ["a", "b"])["MLOPS_SERVING_URL"] == (
        "http://model-server-{usecase}:8080"
    )


def test_nothing_airflow_starts_listens_beyond_loopback(settings, tmp_path):
    """Airflow's log servers bind every interface with no setting for it: the stack does not
    start them (its components share one log folder); the scheduler's health server, off by
    default, is held to 127.0.0.1 should it be turned on."""
    environ = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "0.0.0.0",
    }
    env = airflow_environment(settings, Ports(), environ, usecases=["churn"])
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    stack = LocalStack(settings, Ports(), environ)
    commands = {c.name: c.command[1:] for c in stack.components}
    assert commands["scheduler"] == ["scheduler", "--skip-serve-logs"]
    assert commands["triggerer"] == ["triggerer", "--skip-serve-logs"]
    assert commands["mlflow"][commands["mlflow"].index("--host") + 1] == "127.0.0.1"


LISTEN = (
    "import socket, sys, time\n"
    "family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n"
    "s = socket.socket(family)\n"
    "s.bind((sys.argv[1], 0))\n"
    "s.listen()\n"
    "print('listening', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_component_listening_beyond_loopback_stops_the_stack(settings, tmp_path):
    """Real processes with real sockets: the check sees what each listens on, children
    included (``airflow scheduler`` starts its servers as child processes)."""
    import sys
    import time

    from mlops_pipeline.platform.local_stack.processes import Component, stop_all

    stack = LocalStack(settings, Ports(), {"AIRFLOW_HOME": str(tmp_path / "airflow")})
    local = Component("local", [sys.executable, "-c", LISTEN, "127.0.0.1"], tmp_path / "l.log")
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {LISTEN!r}, '0.0.0.0'])"
    exposed = Component("exposed", [sys.executable, "-c", child], tmp_path / "e.log")
    stack.components = [local, exposed]
    try:
        for component in stack.components:
            component.start({}, cwd=tmp_path)
        deadline = time.monotonic() + 30
        while not all("listening" in c.tail() for c in stack.components):
            assert time.monotonic() < deadline, "the listeners did not start"
            time.sleep(0.1)
        with pytest.raises(
            StackError, match=r"beyond the loopback interface: exposed: 0\.0\.0\.0:"
        ):
            stack.check_loopback()
        stack.components = [local]
        stack.check_loopback()
    finally:
        stop_all([local, exposed], timeout=5)


def test_the_warm_up_asks_again_after_a_server_error():
    """The api-server's first MLOps view request can hit CPython 3.11's concurrent-compile race
    (gh-106905): the warm-up asks again instead of failing the whole stack."""
    import http.server
    import threading
    import types

    from mlops_pipeline.platform.local_stack.stack import LocalStack

    answers = iter([500, 200])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            self.send_response(next(answers))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stack = types.SimpleNamespace(
            airflow_url=f"http://127.0.0.1:{server.server_port}",
            usecases=["any"],
            token=lambda: "t",
        )
        LocalStack.warm_up(stack)  # raises if the second answer were not taken
        assert next(answers, None) is None
    finally:
        server.shutdown()
