"""Feast correctness on the embedded profile: registration, point-in-time joins, TTLs and the
online store's behaviour under re-runs and backfills. Small real data, real Feast."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.config import Settings
from mlops_pipeline.data import contract, storage
from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import BatchRejected, ingest_day
from mlops_pipeline.features.access import NotEnoughData, _consecutive_chunks, build_training_set
from mlops_pipeline.features.groups import ACTIVITY_FEATURES, FEATURE_SERVICE, PROFILE_FEATURES
from mlops_pipeline.features.materialization import (
    check_online,
    days_interval,
    materialize_interval,
    materialized_ranges,
)
from mlops_pipeline.features.store import open_store, register_definitions

D0 = dt.date(2025, 6, 2)
DAYS = [D0 + dt.timedelta(days=i) for i in range(3)]
ROWS = 300


@pytest.fixture
def lake(settings) -> Settings:
    """Three validated days and registered definitions, in this test's own MLOPS_HOME."""
    for day in DAYS:
        generate_day(settings.landing_dir, day, ROWS)
        ingest_day(settings, day)
    register_definitions(settings)
    return settings


def _lake_day(settings, day) -> pd.DataFrame:
    frame = pd.read_parquet(storage.partition_dir(settings.lake_dir, day))
    return frame.set_index(contract.ENTITY_KEY).sort_index()


def _online(settings, ids) -> pd.DataFrame:
    store = open_store(settings)
    served = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE),
        entity_rows=[{contract.ENTITY_KEY: int(i)} for i in ids],
    ).to_df(include_event_timestamps=True)
    return served.set_index(contract.ENTITY_KEY).sort_index()


def test_definitions_are_applied_only_when_they_change(lake, tmp_path):
    assert register_definitions(lake).applied is False
    materialize_interval(lake, *days_interval([DAYS[0]]))
    assert register_definitions(lake).applied is False
    intervals = open_store(lake).get_feature_view("customer_activity").materialization_intervals
    assert len(intervals) == 1, "an unchanged re-registration must keep materialization state"

    changed_repo = tmp_path / "feature_repo"
    shutil.copytree(lake.feature_repo, changed_repo)
    source = changed_repo / "churn_features.py"
    source.write_text(source.read_text().replace("ttl=timedelta(days=2)", "ttl=timedelta(days=3)"))
    changed = lake.replace(feature_repo=changed_repo)
    registration = register_definitions(changed)
    assert registration.applied and registration.previous_fingerprint is not None
    view = open_store(changed).get_feature_view("customer_activity")
    assert view.ttl == dt.timedelta(days=3)


def test_training_set_is_point_in_time_correct(lake):
    d0, d1 = _lake_day(lake, DAYS[0]), _lake_day(lake, DAYS[1])
    ids = d1.index[:50]
    just_before = d1.loc[ids, contract.EVENT_TIMESTAMP] - pd.Timedelta(seconds=1)
    entities = pd.DataFrame(
        {
            contract.ENTITY_KEY: np.concatenate([ids, ids]),
            contract.EVENT_TIMESTAMP: np.concatenate(
                [just_before, d1.loc[ids, contract.EVENT_TIMESTAMP]]
            ),
        }
    )
    store = open_store(lake)
    joined = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service(FEATURE_SERVICE)
    ).to_df()
    joined = joined.set_index([contract.ENTITY_KEY, contract.EVENT_TIMESTAMP]).sort_index()
    for customer, ts in zip(ids, just_before, strict=True):
        row = joined.loc[(customer, ts)]
        # One second before the day's snapshot, only the previous day's values may be seen.
        for name in contract.FEATURE_COLUMNS:
            assert row[name] == d0.loc[customer, name], (customer, name)
    for customer in ids:
        row = joined.loc[(customer, d1.loc[customer, contract.EVENT_TIMESTAMP])]
        assert row["monthly_charges"] == d1.loc[customer, "monthly_charges"]
    assert np.allclose(
        joined["charges_per_device"], joined["monthly_charges"] / joined["num_devices"]
    )


def test_ttl_turns_stale_values_into_missing(lake):
    last = _lake_day(lake, DAYS[-1])
    ids = last.index[:20]
    later = last.loc[ids, contract.EVENT_TIMESTAMP] + pd.Timedelta(days=3)
    store = open_store(lake)
    joined = store.get_historical_features(
        entity_df=pd.DataFrame({contract.ENTITY_KEY: ids, contract.EVENT_TIMESTAMP: later.values}),
        features=store.get_feature_service(FEATURE_SERVICE),
    ).to_df()
    # Three days on: activity (TTL 2 days) is unknown, the profile (TTL 35 days) still holds.
    assert joined[list(ACTIVITY_FEATURES)].isna().all().all()
    assert joined[list(PROFILE_FEATURES)].notna().all().all()


def test_training_set_covers_validated_days_only(lake):
    generate_day(lake.landing_dir, D0 + dt.timedelta(days=3), ROWS, scenario="schema_break")
    with pytest.raises(BatchRejected):
        ingest_day(lake, D0 + dt.timedelta(days=3))
    training = build_training_set(lake, D0, D0 + dt.timedelta(days=3))
    assert training.days == DAYS
    assert len(training.frame) == 3 * ROWS
    assert [p["validation_id"] for p in training.partitions] == [
        storage.read_manifest(storage.partition_dir(lake.lake_dir, d))["validation_id"]
        for d in DAYS
    ]
    assert training.frame[contract.LABEL].notna().all()
    assert set(training.feature_columns) >= set(contract.FEATURE_COLUMNS)
    with pytest.raises(NotEnoughData):
        build_training_set(lake, D0 + dt.timedelta(days=10), D0 + dt.timedelta(days=12))


def test_a_training_set_joined_day_by_day_equals_one_join(lake):
    whole = build_training_set(lake.replace(training_set_chunk_rows=10 * ROWS), D0, DAYS[-1])
    by_day = build_training_set(lake.replace(training_set_chunk_rows=ROWS), D0, DAYS[-1])
    pd.testing.assert_frame_equal(by_day.frame, whole.frame)
    assert by_day.partitions == whole.partitions and by_day.days == whole.days


def test_chunks_are_runs_of_consecutive_days_within_the_row_budget():
    days = [(pd.DataFrame({"row": range(n)}), {}) for n in [3, 3, 5, 1]]
    assert [len(c) for c in _consecutive_chunks(days, 6)] == [6, 6]
    # A day over the budget is a chunk of its own; no day is ever split or dropped.
    assert [len(c) for c in _consecutive_chunks(days, 2)] == [3, 3, 5, 1]
    assert [len(c) for c in _consecutive_chunks(days, 100)] == [12]


def test_materializing_the_same_interval_twice_changes_nothing(lake):
    ids = _lake_day(lake, DAYS[1]).index
    materialize_interval(lake, *days_interval([DAYS[1]]))
    first = _online(lake, ids)
    materialize_interval(lake, *days_interval([DAYS[1]]))
    pd.testing.assert_frame_equal(_online(lake, ids), first)
    assert check_online(lake, DAYS[1]).served_day_values == lake.online_check_sample


def test_consecutive_days_use_feasts_own_materialization(lake):
    for day in DAYS:
        result = materialize_interval(lake, *days_interval([day]))
        assert set(result.feature_views.values()) == {"materialize"}, day
        assert check_online(lake, day).served_day_values == lake.online_check_sample


def test_an_older_interval_never_overwrites_newer_values(lake):
    newest = _lake_day(lake, DAYS[2])
    materialize_interval(lake, *days_interval([DAYS[2]]))
    result = materialize_interval(lake, *days_interval([DAYS[0]]))
    served = _online(lake, newest.index)
    for name in contract.FEATURE_COLUMNS:
        assert (served[name] == newest[name]).all(), name
    # SQLite does not compare timestamps on write: the guard did it.
    assert set(result.feature_views.values()) == {"guarded"}
    check = check_online(lake, DAYS[0])
    assert check.served_newer_values == check.checked
    ranges = materialized_ranges(lake)
    assert ranges["customer_activity"]["intervals"] == 2


def test_future_end_is_clipped(lake):
    now = dt.datetime.combine(DAYS[1], dt.time(12), tzinfo=dt.UTC)
    result = materialize_interval(lake, *days_interval([DAYS[1]]), now=now)
    assert result.clipped_end and result.end == now.isoformat()


def test_duckdb_training_set_matches_the_stock_file_offline_store(lake, tmp_path):
    stock_repo = tmp_path / "stock_repo"
    shutil.copytree(lake.feature_repo, stock_repo)
    yaml_path = stock_repo / "feature_store.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("type: duckdb", "type: file"))
    stock = lake.replace(feature_repo=stock_repo)
    ours = build_training_set(lake, DAYS[0], DAYS[-1]).frame
    theirs = build_training_set(stock, DAYS[0], DAYS[-1]).frame
    theirs = theirs[ours.columns]
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def test_definitions_follow_the_settings_object_not_the_environment(lake, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "somewhere-else"))
    # Same settings object, other environment: same definitions, so nothing to apply.
    assert register_definitions(lake).applied is False
    source = open_store(lake).get_data_source("customer_activity_source")
    assert source.path.startswith(str(lake.lake_dir))
