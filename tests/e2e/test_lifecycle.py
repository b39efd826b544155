"""The demo's lifecycle, shortened: days through ingest -> materialize -> train -> deploy and
the nightly drift check, until drift triggers a retrain and the gates decide on it (churn);
and a regression use case's first model, each DAG run on the asset events of the one before
(store_demand)."""

from __future__ import annotations

import datetime as dt
import json

from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.deployment import registry
from mlops_pipeline.features.store import register_definitions
from mlops_pipeline.monitoring.records import read_record
from mlops_pipeline.platform.demo.lifecycle import demo_scenarios, run_lifecycle, unexpected
from mlops_pipeline.platform.demo.report import table

START = dt.date(2025, 9, 1)
ROWS = 1_000
DAYS = 9
DRIFT_FROM = 7
# Days before this one are ingested directly (as in the other e2e tests); from it on, every
# day runs through the DAGs: the first model, the first drifted night, the retrain.
THROUGH_AIRFLOW_FROM = 6


def test_drift_triggers_a_retrain_and_the_gates_decide(runner, override, monkeypatch):
    # Small test days: lower the row minimums declared for 20,000-row days.
    settings = override(
        {
            "churn": {
                "drift": {"min_partition_rows": ROWS // 2},
                "training": {"min_train_rows": ROWS // 2},
            }
        }
    )
    monkeypatch.setenv("MLOPS_BUILD_DATA_DOCS", "false")
    # The demo's days without its broken one, so that the seventh day holds the first model.
    scenarios = demo_scenarios(DAYS, DRIFT_FROM) | {4: "clean"}
    for offset in range(THROUGH_AIRFLOW_FROM):
        day = START + dt.timedelta(days=offset)
        generate_day(settings, day, ROWS, scenario=scenarios.pop(offset))
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
    retrained = tracking.get_model_version(settings.spec.model_name, "2")
    reason = retrained.tags["mlops.trigger_reason"]
    assert reason.startswith("drift: data drift: share"), reason
    assert retrained.tags["mlops.data_window_end"] == day[8]
    assert retrained.tags["mlops.decision"] in ("promoted", "rejected")
    assert rows[day[8]]["model"] == f"v2 {retrained.tags['mlops.decision']}"

    folder = settings.decisions_dir
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    assert [(r["version"], r["outcome"]) for r in records] == [
        ("1", "promoted"),
        ("2", retrained.tags["mlops.decision"]),
    ]
    gates = records[-1]["evaluation"]["gates"]
    assert gates["first_model"] is False and gates["checks"], "v2 was judged against v1"
    assert records[-1]["evaluation"]["champion"]["version"] == "1"
    night = read_record(settings, dt.date.fromisoformat(day[8]))
    assert [d.isoformat() for d in night.decision.nights_flagged] == day[7:9]

    assert 0 < lifecycle.task_seconds < lifecycle.wall_seconds


def test_a_regression_usecase_runs_on_its_own_asset_events(runner, override, monkeypatch):
    """store_demand, the minimum lifecycle: three small days, each DAG run on exactly the asset
    events its producer's run emitted, until the first model is trained and judged."""
    monkeypatch.setenv("MLOPS_BUILD_DATA_DOCS", "false")
    # The fewest partitions a time split takes (train, validation, test: one each) and rows
    # minimums for 300-row days.
    override(
        {
            "store_demand": {
                "training": {
                    "min_train_rows": 100,
                    "split": {"validation_partitions": 1, "test_partitions": 1},
                }
            }
        }
    )
    from mlops_pipeline.config import get_settings

    settings = get_settings().for_usecase("store_demand")
    spec = settings.spec
    assert spec.training.split.partitions_needed == 3
    start, rows = dt.date(2025, 10, 6), 300
    days = [start + dt.timedelta(days=i) for i in range(3)]

    trained = deployed = None
    for day in days:
        generate_day(settings, day, rows)
        ingested = runner.run_daily("store_demand__ingest", day)
        assert str(ingested.state) == "success", runner.task_states(ingested)
        (validated,) = runner.asset_event_extras("store_demand__validated_data", ingested)
        assert validated["date"] == day.isoformat()

        materialized = runner.run_on_events("store_demand__materialize", [ingested])
        assert str(materialized.state) == "success", runner.task_states(materialized)
        (online,) = runner.asset_event_extras("store_demand__features_online", materialized)
        assert online["dates"] == [day.isoformat()]

        trained = runner.run_on_events("store_demand__train", [materialized])
        states = runner.task_states(trained)
        assert str(trained.state) == "success", states
        deployed = runner.run_on_events("store_demand__deploy", [trained])
        if day < days[-1]:
            # Fewer validated partitions than a split needs: no model, so nothing to deploy.
            assert (states["training_due"], states["train"]) == ("success", "skipped")
            assert deployed is None
    # The third partition completes the split: the first model, judged by the regression gates.
    assert runner.task_states(trained)["train"] == "success"
    (challenger,) = runner.asset_event_extras("store_demand__challenger", trained)
    assert (challenger["model_name"], challenger["version"]) == (spec.model_name, "1")
    tracking = registry.client(settings)
    version = tracking.get_model_version(spec.model_name, "1")
    assert version.tags["mlops.usecase"] == "store_demand"
    assert version.tags["mlops.trigger_reason"] == "features"
    assert version.tags["mlops.data_window_end"] == days[-1].isoformat()
    assert version.tags["mlops.airflow_dag_id"] == "store_demand__train"

    states = runner.task_states(deployed)
    assert str(deployed.state) == "success", states
    (record,) = [json.loads(p.read_text()) for p in settings.decisions_dir.glob("*.json")]
    gates = record["evaluation"]["gates"]
    assert gates["first_model"] is True
    checked = {c["name"].split(":")[-1] for c in gates["checks"]}
    assert {"r2", "rmse", "mae"} <= checked and "roc_auc" not in checked
    # A first model only has to clear the floors (R^2 for a regression) and the budgets.
    assert record["outcome"] == "promoted", record["reasons"]
    assert (states["promote"], states["reject"]) == ("success", "skipped")
    champion = registry.version_for_alias(tracking, spec.model_name, registry.CHAMPION)
    assert str(champion.version) == "1"
    # Nothing of churn's was touched: its own lake, records and registered model.
    churn = settings.for_usecase("churn")
    assert not churn.lake_dir.exists() and not churn.decisions_dir.exists()
