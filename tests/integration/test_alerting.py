"""The alert rules and the Alertmanager config as the stack runs them: real Prometheus and
Alertmanager binaries (Debian's, tests/prometheus_tools.py) on loopback ports, a tiny exporter
serving forced metrics, a model server nobody answers for, and a local webhook receiver that
must get the alerts. Only the waits are shortened (every `for:` and Alertmanager's grouping
delays); the expressions, labels, annotations and routing are the shipped files'.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from mlops_pipeline.serving.process import free_port
from tests import prometheus_tools
from tests.conftest import REPO
from tests.webhook_receiver import json_receiver

DEADLINE_SECONDS = 40
# What the exporter serves: a drifting model, and the first failed run of a DAG (Airflow's
# OTLP histogram, here scraped instead of pushed).
FORCED = """\
# TYPE mlops_drift_share gauge
mlops_drift_share{model="churn-classifier"} 0.5
mlops_drift_share{model="store-demand"} 0.05
# TYPE airflow_dagrun_duration_failed_count counter
airflow_dagrun_duration_failed_count{dag_id="churn__train"} 1
"""
EXPECTED = {
    ("DriftShareOverThreshold", "churn-classifier"),
    ("ModelServerDown", None),
    ("DagRunFailed", None),
}


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Exporter(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = FORCED.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _quick_rules(target: Path) -> None:
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = "0s"
    target.write_text(yaml.safe_dump(rules))


def _quick_alertmanager(target: Path) -> None:
    config = yaml.safe_load((REPO / "deploy/alertmanager/alertmanager.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    target.write_text(yaml.safe_dump(config))


def _prometheus_config(rules: Path, alertmanager: str, exporter: str, dead_server: str) -> dict:
    shipped = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in shipped["scrape_configs"]}
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {**jobs["model-server"], "static_configs": [{"targets": [dead_server]}]},
            {**jobs["textfiles"], "static_configs": [{"targets": [exporter]}]},
        ],
    }


def _start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _fired(received: list[dict]) -> set[tuple[str, str | None]]:
    return {
        (alert["labels"]["alertname"], alert["labels"].get("model"))
        for payload in received
        for alert in payload["alerts"]
        if alert["status"] == "firing"
    }


def test_forced_conditions_reach_the_webhook_through_alertmanager(tmp_path):
    tools = prometheus_tools.require("prometheus", "prometheus-alertmanager")
    receiver, received = json_receiver(with_path=True)
    exporter = _serve(_Exporter)
    alertmanager_port, prometheus_port = free_port(), free_port()
    (tmp_path / "alertmanager").mkdir()
    _quick_alertmanager(tmp_path / "alertmanager.yml")
    _quick_rules(tmp_path / "alerts.yml")
    config = _prometheus_config(
        tmp_path / "alerts.yml",
        f"127.0.0.1:{alertmanager_port}",
        f"127.0.0.1:{exporter.server_address[1]}",
        f"127.0.0.1:{free_port()}",  # nobody listens: the model server is down
    )
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    # The stack's own start script: it writes the webhook's URL into Alertmanager's config.
    alertmanager_env = {
        **os.environ,
        "PATH": f"{Path(tools['prometheus-alertmanager']).parent}:{os.environ['PATH']}",
        "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{receiver.server_address[1]}/alerts?from=test",
        "ALERTMANAGER_TEMPLATE": str(tmp_path / "alertmanager.yml"),
        "ALERTMANAGER_STORAGE": str(tmp_path / "alertmanager"),
    }
    processes = [
        _start(
            [
                "sh",
                str(REPO / "deploy/alertmanager/start.sh"),
                f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            ],
            tmp_path / "alertmanager.log",
            alertmanager_env,
        ),
        _start(
            [
                tools["prometheus"],
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                "--rules.alert.resend-delay=1s",
            ],
            tmp_path / "prometheus.log",
        ),
    ]
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline and not EXPECTED <= _fired(received):
            for process in processes:
                if process.poll() is not None:
                    pytest.fail(f"{process.args[0]} exited: {_logs(tmp_path)}")
            time.sleep(0.5)
    finally:
        for process in processes:
            _stop(process)
        receiver.shutdown()
        exporter.shutdown()
    assert EXPECTED <= _fired(received), f"received {_fired(received)}; {_logs(tmp_path)}"
    # Nothing fires below its threshold; every alert carries what a person needs.
    assert ("DriftShareOverThreshold", "store-demand") not in _fired(received)
    assert all(p["path"] == "/alerts?from=test" for p in received)
    alerts = {a["labels"]["alertname"]: a for p in received for a in p["alerts"]}
    assert alerts["DagRunFailed"]["annotations"]["summary"] == "DAG churn__train failed"
    assert alerts["ModelServerDown"]["labels"]["severity"] == "critical"
    drift = [p for p in received if p["groupLabels"].get("alertname") == "DriftShareOverThreshold"]
    assert drift and drift[0]["groupLabels"]["model"] == "churn-classifier"


def _logs(folder: Path) -> str:
    return " | ".join(
        f"{log.name}: {log.read_text(errors='replace')[-1500:]}" for log in folder.glob("*.log")
    )
