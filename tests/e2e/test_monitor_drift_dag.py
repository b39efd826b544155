"""The nightly drift check through Airflow, against a champion in the embedded registry."""

from __future__ import annotations

import datetime as dt

from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.deployment import promotion as deployment
from mlops_pipeline.deployment import registry
from mlops_pipeline.monitoring import records as monitoring
from mlops_pipeline.monitoring.textfile import prometheus_file
from mlops_pipeline.orchestration.runner import asset_event_extras
from mlops_pipeline.platform.mlops_view.files import resolve_report
from mlops_pipeline.platform.mlops_view.page import render_page
from mlops_pipeline.platform.mlops_view.state import view_state
from mlops_pipeline.platform.status import platform_status
from mlops_pipeline.training.job import TrainingRequest, train_and_register
from mlops_pipeline.training.planning import trigger_from_events
from tests.conftest import prometheus_samples
from tests.e2e.conftest import DAYS, ROWS

DRIFT_DAYS = [DAYS[-1] + dt.timedelta(days=i) for i in (1, 2)]


def _night(runner, day):
    run = runner.run_daily("churn__monitor_drift", day)
    return run, runner.task_states(run)


def test_drift_that_persists_requests_one_retrain_with_its_reasons(runner, lake, override):
    # 800-row test days: below the declared minimum partition, which is for 20,000-row days.
    settings = override({"churn": {"drift": {"min_partition_rows": ROWS // 2}}})
    assert settings.home == lake.home
    share_threshold = settings.spec.drift.share_threshold
    events_before = len(asset_event_extras("churn__retrain_requested"))

    run, states = _night(runner, DAYS[-1])
    assert str(run.state) == "success", states
    assert monitoring.read_record(settings, DAYS[-1]).status == monitoring.NO_CHAMPION

    train_and_register(settings, TrainingRequest(DAYS[-1]))
    deployment.promote(settings, "1")
    for day in DRIFT_DAYS:
        generate_day(settings, day, ROWS, scenario="covariate_drift")
        ingest_day(settings.replace(build_data_docs=False), day)

    # A clean night, then two drifted ones: the first is a blip, the second makes 2 of 3.
    run, states = _night(runner, DAYS[-1])
    clean = monitoring.read_record(settings, DAYS[-1])
    assert (clean.status, clean.decision.retrain) == ("checked", False)
    assert clean.drift.drift_share < share_threshold
    assert states["request_retrain"] == "skipped"

    run, states = _night(runner, DRIFT_DAYS[0])
    first = monitoring.read_record(settings, DRIFT_DAYS[0])
    assert first.drift.drift_share >= share_threshold
    assert {"monthly_charges", "avg_daily_usage_minutes"} <= set(first.drift.drifted_columns)
    assert first.decision.retrain is False
    assert first.decision.reasons[0].startswith("drifted on 1 of the last 3 nights")
    assert (states["retrain_needed"], states["request_retrain"]) == ("success", "skipped")
    assert len(asset_event_extras("churn__retrain_requested")) == events_before

    run, states = _night(runner, DRIFT_DAYS[1])
    assert states["request_retrain"] == "success", states
    (extra,) = asset_event_extras("churn__retrain_requested")[events_before:]
    assert extra["date"] == DRIFT_DAYS[1].isoformat()
    assert extra["reason"].startswith("data drift: share")
    assert extra["nights_flagged"] == [d.isoformat() for d in DRIFT_DAYS]
    assert extra["champion_version"] == "1" and extra["drift_share"] >= 0.2
    # What the training DAG makes of the event: a drift reason and the night as window end.
    window_end, reason = trigger_from_events(
        {"retrain_requested": [extra]}, None, "manual", DAYS[0]
    )
    assert window_end == DRIFT_DAYS[1] and reason.startswith("drift: data drift")

    # The night's artifacts: HTML report, summary, Prometheus textfile, MLflow run.
    record = monitoring.read_record(settings, DRIFT_DAYS[1])
    assert "<html" in open(record.report_html).read(2000).lower()
    assert record.prediction.source == "batch scoring"
    performance = record.performance
    assert performance.rows == ROWS and performance.metric == "roc_auc"
    assert performance.value > 0.5
    prom = prometheus_samples(prometheus_file(settings).read_text())
    samples = {(name, labels.get("column")): value for name, labels, value in prom}
    assert ("mlops_drift_share", None) in samples
    assert ("mlops_drift_column_score", "monthly_charges") in samples
    assert samples[("mlops_retrain_requested", None)] == 1.0
    assert {labels["model"] for _, labels, _ in prom} == {settings.spec.model_name}
    tracking = registry.client(settings)
    experiment = tracking.get_experiment_by_name(settings.spec.monitoring_experiment)
    night_runs = tracking.search_runs(
        [experiment.experiment_id], f"tags.`mlops.night` = '{DRIFT_DAYS[1].isoformat()}'"
    )
    assert [r.info.run_id for r in night_runs] == [record.mlflow_run_id]
    assert {a.path for a in tracking.list_artifacts(record.mlflow_run_id, "drift")} == {
        "drift/report.html",
        "drift/summary.json",
    }

    # Re-running a night replaces its record and its MLflow run; the decision is the same.
    run, states = _night(runner, DRIFT_DAYS[1])
    again = monitoring.read_record(settings, DRIFT_DAYS[1])
    assert again.airflow["run_id"] == run.run_id != record.airflow["run_id"]
    assert again.decision == record.decision
    night_runs = tracking.search_runs(
        [experiment.experiment_id], f"tags.`mlops.night` = '{DRIFT_DAYS[1].isoformat()}'"
    )
    assert [r.info.run_id for r in night_runs] == [again.mlflow_run_id]

    nights = platform_status(settings)["monitoring"]["nights"]
    assert [n["night"] for n in nights[:3]] == [
        DRIFT_DAYS[1].isoformat(),
        DRIFT_DAYS[0].isoformat(),
        DAYS[-1].isoformat(),
    ]
    assert [n["retrain"] for n in nights[:3]] == [True, False, False]
    # The MLOps view on these real records (its own tests render synthetic ones): the figures
    # and the link to each night's Evidently report.
    shown = view_state(settings)["monitoring"]["nights"][:3]
    assert [n["drift_share"] for n in shown] == [
        monitoring.read_record(settings, day).drift.drift_share
        for day in (DRIFT_DAYS[1], DRIFT_DAYS[0], DAYS[-1])
    ]
    linked = resolve_report(settings, shown[0]["report_url"].removeprefix("reports/"))
    assert linked.samefile(again.report_html)
    page = render_page(view_state(settings))
    assert "monthly_charges" in page and shown[0]["report_url"] in page

    # A day without a validated partition cannot be checked: fail at once, no retries.
    run, states = _night(runner, DRIFT_DAYS[1] + dt.timedelta(days=5))
    assert str(run.state) == "failed" and states["check"] == "failed"
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(run_id=run.run_id, task_id="check").one()
        assert ti.try_number == 1
