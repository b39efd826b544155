"""MLOps view: ``GET /mlops/api/<usecase>/status`` (and the use case's HTML page) through
Airflow's own API app, login dependency included, over a home where the use case
(``MLOPS_BENCH_USECASE``, churn unless set) has 100 registered versions, 365 drift nights and
100 decision records (goal: p99 < 200 ms).

The app runs in a fresh interpreter (``airflow.api_fastapi.app.create_app()``, the plugin
mounted by Airflow, Starlette's test client: no network between client and app).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO, run_python, save
from bench.features import USECASE
from mlops_pipeline.orchestration.runner import embedded_airflow_env

VERSIONS = 100
NIGHTS = 365
DECISIONS = 100
REQUESTS = 200

_TIMED = r"""
import json, os, statistics, sys, time
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

requests, usecase = int(sys.argv[1]), sys.argv[2]
client = TestClient(create_app(), base_url="http://127.0.0.1")
token = client.post(
    "/auth/token", json={"username": "admin", "password": os.environ["BENCH_PASSWORD"]}
).json()["access_token"]
client.headers["Authorization"] = f"Bearer {token}"
result = {}
for path in (f"/mlops/api/{usecase}/status", f"/mlops/{usecase}/"):
    for _ in range(3):  # the first request imports MLflow in the app
        assert client.get(path).status_code == 200
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200
    timings.sort()
    result[path.replace(usecase, "<usecase>")] = {
        "p50_ms": statistics.median(timings),
        "p99_ms": timings[int(0.99 * (len(timings) - 1))],
        "bytes": len(answer.content),
    }
print(json.dumps(result))
"""


def _checks(spec: Any) -> list[dict[str, Any]]:
    floors = [
        {"name": f"floor:{g.metric}", "value": 0.74, "threshold": 0.7, "passed": True, "detail": ""}
        for g in spec.gate_metrics
    ]
    budget = {"name": "budget:p99_latency_ms", "value": 9.0, "threshold": 50.0, "passed": True}
    return [*floors, budget]


def build_home(home: Path) -> None:
    """Versions registered on runs with metrics (no model files: the view reads metadata),
    aliases, drift nights and decision records, written with the pipeline's functions."""
    from mlflow.entities import Metric

    from mlops_pipeline.config import Settings
    from mlops_pipeline.deployment import registry
    from mlops_pipeline.deployment.decisions import decision_record, write_decision_record
    from mlops_pipeline.deployment.records import Evaluation
    from tests.ui.state import record_nights

    settings = Settings(home=home, usecase=USECASE)
    spec = settings.spec
    tracking = registry.client(settings)
    experiment = registry.experiment_id(tracking, settings, "bench-mlops-view")
    name = spec.model_name
    tracking.create_registered_model(name)
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    for i in range(VERSIONS):
        run = tracking.create_run(experiment)
        run_id = run.info.run_id
        metrics = {f"test_{g.metric}": 0.7 + i / 1000 for g in spec.gate_metrics}
        if spec.is_classifier:
            metrics["threshold"] = 0.25
        tracking.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        tracking.set_terminated(run_id)
        tracking.create_model_version(
            name,
            f"runs:/{run_id}/model",
            run_id,
            tags={"mlops.data_window": "2025-07-13..2025-08-09", "mlops.trigger_reason": "bench"},
        )
    for alias, version in (("champion", VERSIONS - 1), ("challenger", VERSIONS)):
        tracking.set_registered_model_alias(name, alias, str(version))
    tracking.set_registered_model_alias(name, "previous_champion", str(VERSIONS - 2))
    record_nights(settings, NIGHTS, champion=str(VERSIONS - 1))
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    for i in range(DECISIONS):
        evaluation = {
            "model_name": name,
            "challenger": {
                "version": str(i + 1),
                "run_id": "bench",
                "threshold": None,
                "metrics": {},
            },
            "champion": None,
            "holdout": {"window": "2025-08-07..2025-08-09", "rows": 60000},
            "gates": {
                "passed": True,
                "first_model": False,
                "checks": _checks(spec),
                "reasons": [],
            },
        }
        record = decision_record(
            "promote", "promoted", name, str(i + 1), Evaluation.model_validate(evaluation)
        )
        record.decided_at = (start + dt.timedelta(days=i)).isoformat()
        write_decision_record(settings, record, None)


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-mlops-view-") as tmp:
        home = Path(tmp) / "home"
        build_home(home)
        password = secrets.token_urlsafe(18)
        passwords = Path(tmp) / "passwords.json"
        passwords.write_text(f'{{"admin": "{password}"}}')
        airflow_home = Path(tmp) / "airflow"
        env = {
            **embedded_airflow_env(airflow_home, REPO / "dags"),
            "MLOPS_HOME": str(home),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "BENCH_PASSWORD": password,
        }
        run_python(
            "from mlops_pipeline.orchestration.runner import migrate_metadata_db as m; "
            "m(); print('{}')",
            env=env,
        )
        timed = run_python(_TIMED, str(REQUESTS), USECASE, env=env)
    result = {
        "versions": VERSIONS,
        "nights": NIGHTS,
        "decisions": DECISIONS,
        "requests": REQUESTS,
        "usecase": USECASE,
        "status_api": timed["/mlops/api/<usecase>/status"],
        "page": timed["/mlops/<usecase>/"],
    }
    save("mlops_view", result)
    return result


def report(result: dict[str, Any]) -> str:
    api, page = result["status_api"], result["page"]
    return "\n".join(
        [
            f"MLOps view of {result['usecase']} ({result['versions']} versions, "
            f"{result['nights']} drift nights, "
            f"{result['decisions']} decision records; {result['requests']} requests each)",
            "",
            "| request | goal | p50 / p99 | response |",
            "|---|---|---|---|",
            f"| GET /mlops/api/<usecase>/status | p99 < 200 ms | {api['p50_ms']:.1f} / "
            f"{api['p99_ms']:.1f} ms | {api['bytes'] / 1024:.0f} KiB |",
            f"| GET /mlops/<usecase>/ (HTML) | | {page['p50_ms']:.1f} / {page['p99_ms']:.1f} ms "
            f"| {page['bytes'] / 1024:.0f} KiB |",
        ]
    )


if __name__ == "__main__":
    os.environ.setdefault("MLOPS_HOME", str(REPO / ".local"))
    print(report(run()))
