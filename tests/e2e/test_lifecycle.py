"""The demo's lifecycle, shortened: days through ingest -> materialize -> train -> deploy and
the nightly drift check, until drift triggers a retrain and the gates decide on it."""

from __future__ import annotations

import datetime as dt
import json

from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.deployment import promotion as deployment
from mlops_pipeline.deployment import registry
from mlops_pipeline.features.store import register_definitions
from mlops_pipeline.monitoring.nightly import read_record
from mlops_pipeline.platform.demo import demo_scenarios, run_lifecycle, table, unexpected

START = dt.date(2025, 9, 1)
ROWS = 1_000
DAYS = 9
DRIFT_FROM = 7
# Days before this one are ingested directly (as in the other e2e tests); from it on, every
# day runs through the DAGs: the first model, the first drifted night, the retrain.
THROUGH_AIRFLOW_FROM = 6


def test_drift_triggers_a_retrain_and_the_gates_decide(runner, settings, monkeypatch):
    # Small test days: lower the row minimums made for 20,000-row days.
    monkeypatch.setenv("MLOPS_DRIFT_MIN_BATCH_ROWS", str(ROWS // 2))
    monkeypatch.setenv("MLOPS_MIN_TRAINING_ROWS", str(ROWS // 2))
    monkeypatch.setenv("MLOPS_BUILD_DATA_DOCS", "false")
    # The demo's days without its broken one, so that the seventh day holds the first model.
    scenarios = demo_scenarios(DAYS, DRIFT_FROM) | {4: "clean"}
    for offset in range(THROUGH_AIRFLOW_FROM):
        day = START + dt.timedelta(days=offset)
        generate_day(settings.landing_dir, day, ROWS, scenario=scenarios.pop(offset))
        ingest_day(settings.replace(build_data_docs=False), day)
    register_definitions(settings)
    lifecycle = run_lifecycle(settings, START, scenarios, ROWS)
    print(table(lifecycle.rows))
    assert unexpected(lifecycle.rows) == []

    rows = {r["date"]: r for r in lifecycle.rows}
    day = [(START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    # The first model once seven days are in, promoted by the gates (first model: floors).
    assert rows[day[6]]["model"] == "v1 promoted" and rows[day[6]]["champion"] == "v1"
    # Drift from day 7: a blip on its first night, a retrain on the second (2 of 3).
    assert rows[day[6]]["retrain"] == "no"
    assert rows[day[7]]["retrain"] == "no (1 of 3)"
    assert rows[day[8]]["retrain"] == "RETRAIN"
    assert float(rows[day[8]]["drift_share"]) >= 0.2

    tracking = registry.client(settings)
    retrained = tracking.get_model_version(settings.registered_model_name, "2")
    reason = retrained.tags["mlops.trigger_reason"]
    assert reason.startswith("drift: data drift: share"), reason
    assert retrained.tags["mlops.data_window_end"] == day[8]
    assert retrained.tags["mlops.decision"] in ("promoted", "rejected")
    assert rows[day[8]]["model"] == f"v2 {retrained.tags['mlops.decision']}"

    folder = settings.reports_dir / deployment.DECISIONS_DIR
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    assert [(r["version"], r["outcome"]) for r in records] == [
        ("1", "promoted"),
        ("2", retrained.tags["mlops.decision"]),
    ]
    gates = records[-1]["evaluation"]["gates"]
    assert gates["first_model"] is False and gates["checks"], "v2 was judged against v1"
    assert records[-1]["evaluation"]["champion"]["version"] == "1"
    night = read_record(settings, dt.date.fromisoformat(day[8]))
    assert night["decision"]["nights_flagged"] == day[7:9]

    assert 0 < lifecycle.task_seconds < lifecycle.wall_seconds
