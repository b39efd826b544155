"""Ingestion's asset events drive materialization; rejected days never reach the online store."""

from __future__ import annotations

import datetime as dt

from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.features.access import OnlineFeatureReader
from mlops_pipeline.features.materialization import days_from_asset_extras
from mlops_pipeline.orchestration.runner import asset_event_extras
from tests.conftest import TEST_ROWS

D0 = dt.date(2025, 7, 1)


def test_validated_days_are_materialized_and_rejected_days_are_not(runner, settings):
    scenarios = {
        D0: "clean",
        D0 + dt.timedelta(days=1): "clean",
        D0 + dt.timedelta(days=2): "empty",
    }
    for day, scenario in scenarios.items():
        generate_day(settings, day, TEST_ROWS, scenario=scenario)
        runner.run_daily("churn__ingest", day)
    extras = [
        e
        for e in asset_event_extras("churn__validated_data")
        if e["date"] in {d.isoformat() for d in scenarios}
    ]
    # What the asset-triggered run would receive: only the two validated days.
    days = days_from_asset_extras(extras)
    assert days == [D0, D0 + dt.timedelta(days=1)]

    online_before = len(asset_event_extras("churn__features_online"))
    run = runner.run_dag("churn__materialize", conf={"dates": [d.isoformat() for d in days]})
    assert str(run.state) == "success", runner.task_states(run)
    emitted = asset_event_extras("churn__features_online")
    assert len(emitted) == online_before + 1
    assert emitted[-1]["dates"] == [d.isoformat() for d in days]
    reader = OnlineFeatureReader(settings)
    served = reader.read([1, 2, TEST_ROWS + 1])
    assert served["monthly_charges"][0] is not None
    assert served["monthly_charges"][2] is None, "an unknown customer is served nothing"
    # The reader's own value conversion gives exactly what Feast's would.
    assert (
        served
        == reader.store.get_online_features(
            features=reader.service,
            entity_rows=[{"customer_id": k} for k in (1, 2, TEST_ROWS + 1)],
        ).to_dict()
    )

    # A day that failed validation has nothing to materialize: the run fails, no event.
    rejected = runner.run_dag(
        "churn__materialize", conf={"dates": [(D0 + dt.timedelta(days=2)).isoformat()]}
    )
    assert str(rejected.state) == "failed"
    assert runner.task_states(rejected)["check_online"] == "failed"
    assert len(asset_event_extras("churn__features_online")) == online_before + 1


def test_run_without_dates_fails_fast(runner, settings):
    run = runner.run_dag("churn__materialize", conf={"dates": []})
    states = runner.task_states(run)
    assert str(run.state) == "failed" and states["days_to_materialize"] == "failed"
    assert states["materialize"] == "upstream_failed"
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(run_id=run.run_id, task_id="days_to_materialize")
            .one()
        )
        assert (ti.try_number, ti.max_tries >= 1) == (1, True), "deterministic: no retries"
