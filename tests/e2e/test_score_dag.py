"""The batch scoring DAG through Airflow (``dag.test()``), against one champion trained once for
the module on the session's validated lake."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil

import pandas as pd
import pendulum
import pyarrow.parquet as pq
import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.data import storage
from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.deployment import promotion, registry
from mlops_pipeline.features.materialization import days_interval, materialize_interval
from mlops_pipeline.features.store import register_definitions
from mlops_pipeline.monitoring import drift
from mlops_pipeline.monitoring.nightly import BATCH_PREDICTIONS, partition_scores
from mlops_pipeline.orchestration.runner import asset_event_extras
from mlops_pipeline.scoring import batch
from tests.e2e.conftest import DAYS, FAST, ROWS

DAG_ID = "churn__score"
BACKFILL = DAYS[-3:]


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory, validated_lake):
    """The session's validated days, their features materialized, and v1 trained on them and
    promoted: the state the scoring DAG expects."""
    from mlops_pipeline.training.job import TrainingRequest, train_and_register

    home = tmp_path_factory.mktemp("scoring") / "home"
    shutil.copytree(validated_lake, home)
    settings = get_settings().replace(home=home, usecase_overrides=json.dumps(FAST))
    register_definitions(settings)
    materialize_interval(settings, *days_interval(DAYS))
    train_and_register(settings, TrainingRequest(DAYS[-1]))
    promotion.promote(settings, "1")
    return home


@pytest.fixture
def scoring(champion_home, monkeypatch):
    """The module's champion home as this test's MLOPS_HOME (the DAG's tasks read it)."""
    monkeypatch.setenv("MLOPS_HOME", str(champion_home))
    return get_settings()


def _score(runner, day: dt.date, dag=None):
    """Run the DAG for ``day``'s interval; the run is named after that interval's end, so
    running a day again replaces its run under the same id, as clearing it in Airflow does."""
    dag = dag or runner.dagbag().get_dag(DAG_ID)
    end = pendulum.instance(dt.datetime.combine(day, dt.time()), tz="UTC").add(days=1)
    run = dag.test(logical_date=end, run_after=end)
    return run, runner.task_states(run)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_backfill_scores_each_partition_once_per_entity_with_the_champion(runner, scoring):
    runs = {day: _score(runner, day) for day in BACKFILL}
    for day, (run, states) in runs.items():
        assert str(run.state) == "success", states
        frame = pd.read_parquet(batch.predictions_path(scoring, day))
        lake = pq.read_table(storage.partition_dir(scoring.lake_dir, day)).to_pandas()
        assert len(frame) == ROWS and frame["customer_id"].is_unique
        assert sorted(frame["customer_id"]) == sorted(lake["customer_id"])
        assert frame["customer_id"].is_monotonic_increasing
        assert set(frame[batch.MODEL_VERSION]) == {"1"}
        assert set(frame[batch.MODEL_NAME]) == {scoring.spec.model_name}
        assert set(frame[batch.FEATURE_SERVICE]) == {scoring.spec.features.service}
        assert set(frame[batch.AIRFLOW_RUN_ID]) == {run.run_id}
        assert frame[batch.SCORE].between(0, 1).all() and frame[batch.SCORE].nunique() > 10
        threshold = float(
            registry.client(scoring)
            .get_model_version(scoring.spec.model_name, "1")
            .tags["mlops.threshold"]
        )
        assert (frame[batch.DECISION] == (frame[batch.SCORE] >= threshold)).all()
        (extra,) = asset_event_extras("churn__predictions", run)
        assert extra["date"] == day.isoformat() and extra["model_version"] == "1"
        assert extra["rows"] == ROWS

    # The nightly check takes these scores instead of scoring the partition itself, and they
    # are the scores of the partition's own rows (their features as of their timestamps).
    champion = batch.load_scorer(scoring).model
    current = drift.read_partition(scoring, BACKFILL[0])
    scores, source = partition_scores(scoring, BACKFILL[0], current, champion)
    assert source == BATCH_PREDICTIONS
    inline = champion.scores(drift.with_on_demand_features(scoring.spec, current))
    assert abs(scores - inline).max() < 1e-9

    # Re-running a partition in the same run gives the same bytes.
    path = batch.predictions_path(scoring, BACKFILL[-1])
    before = _sha256(path)
    run, states = _score(runner, BACKFILL[-1])
    assert str(run.state) == "success", states
    assert _sha256(path) == before


def test_backfill_create_makes_one_run_per_partition_of_the_range(runner, scoring):
    """What ``airflow backfill create`` does (the scheduler then runs them as above)."""
    from airflow.models.backfill import ReprocessBehavior, _create_backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    dag = runner.dagbag().get_dag(DAG_ID)
    dag.test(logical_date=pendulum.datetime(2025, 8, 2, tz="UTC"))  # puts the DAG in the db
    first, last = DAYS[3], DAYS[5]
    backfill = _create_backfill(
        dag_id=DAG_ID,
        from_date=pendulum.datetime(first.year, first.month, first.day, tz="UTC"),
        to_date=pendulum.datetime(last.year, last.month, last.day, tz="UTC"),
        max_active_runs=1,
        reverse=False,
        dag_run_conf=None,
        triggering_user_name="test",
        reprocess_behavior=ReprocessBehavior.NONE,
    )
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.backfill_id == backfill.id).all()
        intervals = sorted(
            (run.data_interval_start.date(), run.data_interval_end.date()) for run in runs
        )
    assert intervals == [(day, day + dt.timedelta(days=1)) for day in DAYS[3:6]]


def test_shadow_scores_the_challenger_on_the_newest_scored_partition(scoring):
    from dataclasses import replace

    from mlops_pipeline.scoring import shadow

    if shadow.newest_scored_partition(scoring) is None:
        batch.score_partition(scoring, BACKFILL[-1], {"run_id": "r"})
    newest = shadow.newest_scored_partition(scoring)
    champion = batch.load_scorer(scoring)
    same = shadow.shadow_compare(scoring, champion)
    assert same is not None and same.date == newest.isoformat() and same.rows == ROWS
    assert (same.agreement, same.flip_share, same.champion_version) == (1.0, 0.0, "1")
    assert same.psi == pytest.approx(0.0, abs=1e-9)
    # A stricter challenger: the same scores, fewer positives, every flip towards negative.
    stricter = replace(champion, model=replace(champion.model, threshold=0.9, version="2"))
    compared = shadow.shadow_compare(scoring, stricter)
    assert compared is not None and compared.challenger_version == "2"
    assert compared.flip_share > 0 and compared.flips_to_negative == compared.flip_share
    assert not shadow.flip_share_check(compared, compared.flip_share / 2).passed


def test_scores_use_features_as_of_the_partition_not_later_values(runner, scoring):
    day, later = DAYS[-2], DAYS[-1]
    scorer = batch.load_scorer(scoring)

    def scored(partition):
        return batch.score_entities(scoring, batch.entity_rows(scoring, partition), scorer, "r")

    before, later_before = scored(day), scored(later)
    # The later partition's values change completely for the same customers.
    folder = storage.partition_dir(scoring.lake_dir, later)
    (part,) = sorted(folder.glob("*.parquet"))
    original = part.read_bytes()
    try:
        rows = pq.read_table(part).to_pandas()
        rows["monthly_charges"] = 499.0
        rows["days_since_last_login"] = 3000
        rows["support_tickets_30d"] = 99
        rows.to_parquet(part, index=False)
        after, later_after = scored(day), scored(later)
    finally:
        part.write_bytes(original)
    pd.testing.assert_frame_equal(before, after)
    # The change is one the model sees: the later partition's own scores moved.
    assert (later_after[batch.SCORE] - later_before[batch.SCORE]).abs().max() > 0.01


def test_the_scoring_join_equals_feasts_point_in_time_retrieval(scoring):
    from mlops_pipeline.features.access import point_in_time_features, point_in_time_join

    day = batch.entity_rows(scoring, DAYS[-2])
    # Rows of every kind: in the partition, past the short TTL of the activity view, and
    # before any data.
    entities = pd.concat(
        [
            day,
            day.iloc[:100].assign(event_timestamp=day["event_timestamp"] + pd.Timedelta(days=5)),
            day.iloc[:50].assign(event_timestamp=day["event_timestamp"] - pd.Timedelta(days=30)),
        ],
        ignore_index=True,
    )
    feast = point_in_time_features(scoring, entities)
    joined = point_in_time_join(scoring, entities)
    assert list(joined.columns) == list(feast.columns) and len(joined) == len(feast)
    for column in feast.columns:
        assert (joined[column].isna() == feast[column].isna()).all(), column
    assert feast["monthly_charges"].isna().sum() == 150  # the TTL and the empty past
    model = batch.load_scorer(scoring).model
    assert abs(model.scores(joined) - model.scores(feast)).max() < 1e-12


def test_without_a_champion_scoring_fails_at_once(runner, lake):
    materialize_interval(lake, *days_interval([DAYS[-1]]))
    run, states = _score(runner, DAYS[-1])
    assert str(run.state) == "failed"
    assert (states["wait_for_partition"], states["score"]) == ("failed", "upstream_failed")
    assert not batch.predictions_path(lake, DAYS[-1]).exists()


def test_without_materialized_features_scoring_waits_then_fails(runner, scoring, monkeypatch):
    from mlops_pipeline.orchestration.factory import build_dags

    day = DAYS[-1] + dt.timedelta(days=1)
    generate_day(scoring, day, ROWS, file_format="parquet")
    ingest_day(scoring.replace(build_data_docs=False), day)
    monkeypatch.setenv("MLOPS_SCORING_WAIT_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("MLOPS_SCORING_POKE_INTERVAL_SECONDS", "1")
    try:
        run, states = _score(runner, day, build_dags("churn")[DAG_ID])
    finally:
        storage.remove_partition(scoring.lake_dir, day)
    assert str(run.state) == "failed"
    assert (states["wait_for_partition"], states["score"]) == ("failed", "upstream_failed")
    assert not batch.predictions_path(scoring, day).exists()
