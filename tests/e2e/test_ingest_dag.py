"""The ingestion DAG end to end through ``dag.test()``, one run per scenario."""

from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd
import pytest

from mlops_pipeline.data import storage
from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.partition_write import FAILED_EXPECTATIONS
from mlops_pipeline.orchestration.runner import asset_event_extras
from tests.conftest import TEST_ROWS

DAG_ID = "churn__ingest"
DAY = dt.date(2025, 6, 2)

# scenario -> (dag run state, rows validated, rows quarantined); None: nothing written there.
EXPECTED = {
    "clean": ("success", TEST_ROWS, None),
    "covariate_drift": ("success", TEST_ROWS, None),
    "concept_drift": ("success", TEST_ROWS, None),
    "out_of_range": ("success", TEST_ROWS - 2, 2),
    "duplicates": ("success", TEST_ROWS, 1),  # the re-sent snapshot replaces the original
    "null_burst": ("failed", None, 20),
    "schema_break": ("failed", None, 0),
    "empty": ("failed", None, 0),
    "corrupt": ("failed", None, 0),
}


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _asset_events(extra_date: str) -> list[dict]:
    return [e for e in asset_event_extras("churn__validated_data") if e.get("date") == extra_date]


@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_scenario_ends_as_specified(runner, settings, scenario):
    day = DAY + dt.timedelta(days=list(EXPECTED).index(scenario))
    landed = generate_day(settings, day, TEST_ROWS, scenario=scenario)
    raw_before = _sha(landed.path)
    events_before = len(_asset_events(day.isoformat()))

    dag_run = runner.run_daily(DAG_ID, day)

    state, valid, quarantined = EXPECTED[scenario]
    states = runner.task_states(dag_run)
    assert str(dag_run.state) == state, states
    assert _sha(landed.path) == raw_before, "the landed file changed"
    lake = storage.partition_dir(settings.lake_dir, day)
    events = _asset_events(day.isoformat())
    if state == "success":
        assert len(pd.read_parquet(lake)) == valid
        assert len(events) == events_before + 1
        assert events[-1]["rows"] == valid and events[-1]["quarantined"] == (quarantined or 0)
        assert events[-1]["validation_id"].startswith(day.isoformat())
    else:
        assert states["validate_and_split"] == "failed"
        assert not lake.exists(), "a rejected day must not reach the lake"
        assert len(events) == events_before, "a rejected day must not emit the asset"
    quarantine = storage.partition_dir(settings.quarantine_dir, day)
    if quarantined:
        rows = pd.read_parquet(quarantine)
        assert len(rows) == quarantined and rows[FAILED_EXPECTATIONS].str.len().gt(0).all()
    elif quarantined == 0:
        assert storage.read_manifest(quarantine)["status"] == "rejected"
    else:
        assert not quarantine.exists()
    # Validation result JSON and Data Docs exist for every run that got as far as validating.
    if scenario != "corrupt":
        assert list((settings.validations_dir / f"date={day.isoformat()}").glob("*.json"))
        assert (settings.data_docs_dir / "index.html").exists()


def test_rejected_batch_is_not_retried(runner, settings):
    day = DAY + dt.timedelta(days=20)
    generate_day(settings, day, TEST_ROWS, scenario="schema_break")
    dag_run = runner.run_daily(DAG_ID, day)
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=DAG_ID, run_id=dag_run.run_id, task_id="validate_and_split")
            .one()
        )
        assert ti.max_tries >= 1, "the task must keep retries for transient faults"
        assert (str(ti.state), ti.try_number) == ("failed", 1)


def test_running_a_day_twice_leaves_an_identical_partition(runner, settings):
    day = DAY + dt.timedelta(days=30)
    generate_day(settings, day, TEST_ROWS, scenario="out_of_range")
    runner.run_daily(DAG_ID, day)
    partition = storage.partition_dir(settings.lake_dir, day)
    first = {p.name: p.read_bytes() for p in partition.iterdir() if p.suffix == ".parquet"}
    manifest = storage.read_manifest(partition)
    assert str(runner.run_daily(DAG_ID, day).state) == "success"
    assert {p.name: p.read_bytes() for p in partition.iterdir() if p.suffix == ".parquet"} == first
    assert storage.read_manifest(partition) == manifest


def test_missing_landing_file_waits_then_fails(runner, settings):
    dag_run = runner.run_daily(DAG_ID, DAY + dt.timedelta(days=40))
    states = runner.task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["wait_for_landing_file"] == "failed"
    assert states["validate_and_split"] == "upstream_failed"
