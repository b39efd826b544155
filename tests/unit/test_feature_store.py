"""Feast correctness on the embedded profile: registration, point-in-time joins, TTLs and the
online store's behaviour under re-runs and backfills. Small real data, real Feast."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import BatchRejected, ingest_day
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.features.access import (
    NotEnoughData,
    OnlineFeatureReader,
    _consecutive_chunks,
    build_training_set,
)
from mlops_pipeline.features.materialization import (
    OnlineCheckFailed,
    check_online,
    days_from_asset_extras,
    days_interval,
    materialize_interval,
    materialized_ranges,
)
from mlops_pipeline.features.store import load_definitions, open_store, register_definitions
from mlops_pipeline.usecases.spec import Cadence
from tests.unit import feature_usecases as shops

D0 = dt.date(2025, 6, 2)
DAYS = [D0 + dt.timedelta(days=i) for i in range(3)]
ROWS = 300
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validated_lake(tmp_path_factory) -> Path:
    """An MLOPS_HOME with three validated days of churn, built once for this module."""
    from mlops_pipeline.config import get_settings

    home = tmp_path_factory.mktemp("validated-lake") / "home"
    settings = get_settings().replace(home=home)
    for day in DAYS:
        generate_day(settings, day, rows=ROWS)
        ingest_day(settings, day)
    return home


@pytest.fixture
def lake(settings, validated_lake) -> Settings:
    """The three validated days (a copy) and definitions registered in this test's own
    MLOPS_HOME (the Feast registry records its home's paths, so it is made here)."""
    shutil.copytree(validated_lake, settings.home, dirs_exist_ok=True)
    register_definitions(settings)
    return settings


def _overridden(settings: Settings, changes: dict) -> Settings:
    return settings.replace(usecase_overrides=json.dumps({settings.spec.name: changes}))


def _lake_day(settings, day) -> pd.DataFrame:
    frame = pd.read_parquet(storage.partition_dir(settings.lake_dir, day))
    return frame.set_index(settings.spec.entity.key).sort_index()


def _online(settings, ids) -> pd.DataFrame:
    spec = settings.spec
    store = open_store(settings)
    served = store.get_online_features(
        features=store.get_feature_service(spec.features.service),
        entity_rows=[{spec.entity.key: int(i)} for i in ids],
    ).to_df(include_event_timestamps=True)
    return served.set_index(spec.entity.key).sort_index()


def test_definitions_are_applied_only_when_they_change(lake):
    assert register_definitions(lake).applied is False
    materialize_interval(lake, *days_interval([DAYS[0]]))
    assert register_definitions(lake).applied is False
    intervals = open_store(lake).get_feature_view("customer_activity").materialization_intervals
    assert len(intervals) == 1, "an unchanged re-registration must keep materialization state"

    changed = _overridden(lake, {"features": {"views": {"customer_activity": {"ttl": "P3D"}}}})
    registration = register_definitions(changed)
    assert registration.applied and registration.previous_fingerprint is not None
    view = open_store(changed).get_feature_view("customer_activity")
    assert view.ttl == dt.timedelta(days=3)


def test_training_set_is_point_in_time_correct(lake):
    d0, d1 = _lake_day(lake, DAYS[0]), _lake_day(lake, DAYS[1])
    ids = d1.index[:50]
    just_before = d1.loc[ids, lake.spec.timestamp] - pd.Timedelta(seconds=1)
    entities = pd.DataFrame(
        {
            lake.spec.entity.key: np.concatenate([ids, ids]),
            lake.spec.timestamp: np.concatenate([just_before, d1.loc[ids, lake.spec.timestamp]]),
        }
    )
    store = open_store(lake)
    joined = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service(lake.spec.features.service)
    ).to_df()
    joined = joined.set_index([lake.spec.entity.key, lake.spec.timestamp]).sort_index()
    for customer, ts in zip(ids, just_before, strict=True):
        row = joined.loc[(customer, ts)]
        # One second before the day's snapshot, only the previous day's values may be seen.
        for name in lake.spec.feature_columns:
            assert row[name] == d0.loc[customer, name], (customer, name)
    for customer in ids:
        row = joined.loc[(customer, d1.loc[customer, lake.spec.timestamp])]
        assert row["monthly_charges"] == d1.loc[customer, "monthly_charges"]
    assert np.allclose(
        joined["charges_per_device"], joined["monthly_charges"] / joined["num_devices"]
    )


def test_ttl_turns_stale_values_into_missing(lake):
    last = _lake_day(lake, DAYS[-1])
    ids = last.index[:20]
    later = last.loc[ids, lake.spec.timestamp] + pd.Timedelta(days=3)
    store = open_store(lake)
    joined = store.get_historical_features(
        entity_df=pd.DataFrame({lake.spec.entity.key: ids, lake.spec.timestamp: later.values}),
        features=store.get_feature_service(lake.spec.features.service),
    ).to_df()
    # Three days on: activity (TTL 2 days) is unknown, the profile (TTL 35 days) still holds.
    views = lake.spec.features.views
    assert joined[list(views["customer_activity"].features)].isna().all().all()
    assert joined[list(views["customer_profile"].features)].notna().all().all()


def test_training_set_covers_validated_days_only(lake):
    generate_day(lake, D0 + dt.timedelta(days=3), rows=ROWS, scenario="schema_break")
    with pytest.raises(BatchRejected):
        ingest_day(lake, D0 + dt.timedelta(days=3))
    training = build_training_set(lake, D0, D0 + dt.timedelta(days=3))
    assert training.days == DAYS
    assert len(training.frame) == 3 * ROWS
    assert [p["validation_id"] for p in training.partitions] == [
        storage.read_manifest(storage.partition_dir(lake.lake_dir, d))["validation_id"]
        for d in DAYS
    ]
    assert training.frame[lake.spec.label].notna().all()
    assert set(training.feature_columns) == set(lake.spec.model_features)
    assert training.feature_service == lake.spec.features.service
    with pytest.raises(NotEnoughData) as raised:
        build_training_set(lake, D0 + dt.timedelta(days=10), D0 + dt.timedelta(days=12))
    assert isinstance(raised.value, PermanentFailure)


def test_a_training_set_joined_day_by_day_equals_one_join(lake):
    whole = build_training_set(
        _overridden(lake, {"training": {"set_chunk_rows": 10 * ROWS}}), D0, DAYS[-1]
    )
    by_day = build_training_set(
        _overridden(lake, {"training": {"set_chunk_rows": ROWS}}), D0, DAYS[-1]
    )
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
    for name in lake.spec.feature_columns:
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


def test_intervals_cover_whole_partitions_of_the_cadence():
    monday = dt.date(2025, 6, 2)
    assert days_interval([monday + dt.timedelta(days=1)]) == (
        dt.datetime(2025, 6, 3, tzinfo=dt.UTC),
        dt.datetime(2025, 6, 4, tzinfo=dt.UTC),
    )
    # A weekly partition is named by its Monday and holds seven days of rows.
    assert days_interval([monday, monday + dt.timedelta(days=9)], Cadence.WEEKLY) == (
        dt.datetime(2025, 6, 2, tzinfo=dt.UTC),
        dt.datetime(2025, 6, 16, tzinfo=dt.UTC),
    )
    # An hourly one is an hour; its events name it by its key, across midnight.
    late, early = dt.datetime(2025, 6, 2, 23), dt.datetime(2025, 6, 3, 0)
    assert days_interval([late], Cadence.HOURLY) == (
        dt.datetime(2025, 6, 2, 23, tzinfo=dt.UTC),
        dt.datetime(2025, 6, 3, 0, tzinfo=dt.UTC),
    )
    events = [{"date": "2025-06-03T00"}, {"date": "2025-06-02T23"}, {"rows": 0}]
    assert days_from_asset_extras(events, Cadence.HOURLY) == [late, early]
    assert days_interval([early, late], Cadence.HOURLY) == (
        dt.datetime(2025, 6, 2, 23, tzinfo=dt.UTC),
        dt.datetime(2025, 6, 3, 1, tzinfo=dt.UTC),
    )


# A use case declared by hand, in a folder of its own: definitions, training sets, online reads.

SHOP_DAYS = [shops.D0 + dt.timedelta(days=i) for i in range(3)]
SHOPS = 40


@pytest.fixture
def usecases_dir(tmp_path, monkeypatch, mlops_home):
    root = tmp_path / "usecases"
    for name in ("shop_a", "shop_b"):
        shops.write_usecase(root, name)
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(root))
    monkeypatch.setenv("MLOPS_USECASE", "shop_a")
    return root


@pytest.fixture
def shop(usecases_dir) -> Settings:
    """shop_a with three validated days and registered definitions."""
    from mlops_pipeline.config import get_settings

    settings = get_settings()
    shops.write_lake(settings, SHOP_DAYS, SHOPS)
    register_definitions(settings)
    return settings


def _expected_ratios(frame: pd.DataFrame) -> dict[str, list]:
    """The shop's on-demand features, computed here independently of its transforms.py."""
    visits, price = frame["visits"].tolist(), frame["price"].tolist()
    return {
        "price_per_visit": [p / v if v else None for p, v in zip(price, visits, strict=True)],
        "log_visits": [float(np.log1p(v)) for v in visits],
        "busy": [v > 150 for v in visits],
    }


def test_definitions_are_the_declared_ones(usecases_dir):
    from feast import ValueType
    from feast.types import Bool, Float64, Int64, String

    from mlops_pipeline.config import get_settings

    settings = get_settings()
    contents = load_definitions(settings)
    (entity,) = contents.entities
    assert (entity.name, entity.join_key, entity.value_type) == ("shop", "shop_id", ValueType.INT64)
    (source,) = contents.data_sources
    assert source.name == "shop_a_days_source" and source.timestamp_field == "observed_at"
    assert source.path == str(settings.lake_dir / "date=*" / "*.parquet")
    views = {view.name: view for view in contents.feature_views}
    assert {name: view.ttl for name, view in views.items()} == {
        "shop_facts": dt.timedelta(days=10),
        "shop_day": dt.timedelta(days=1),
    }
    assert {f.name: f.dtype for f in views["shop_day"].schema if f.name != "shop_id"} == {
        "visits": Int64,
        "price": Float64,
        "temperature": Float64,
        "promo": Bool,
    }
    facts = {f.name: f for f in views["shop_facts"].features}
    assert (facts["region"].dtype, facts["size_m2"].dtype) == (String, Int64)
    assert facts["size_m2"].description == "Floor space."
    assert views["shop_day"].description == "The day's figures."
    assert all(view.tags["owner"] == "shop-team" for view in views.values())
    (ratios,) = contents.on_demand_feature_views
    assert ratios.name == "shop_ratios" and ratios.mode == "python"
    assert {f.name: f.dtype for f in ratios.features} == {
        "price_per_visit": Float64,
        "log_visits": Float64,
        "busy": Bool,
    }
    (service,) = contents.feature_services
    assert service.name == "shop_a_model_v1"
    assert service.description == "The test shop model's features."
    assert {p.name: [f.name for f in p.features] for p in service.feature_view_projections} == {
        "shop_day": ["visits", "price", "temperature", "promo"],
        "shop_facts": ["region", "size_m2"],
        "shop_ratios": ["price_per_visit", "log_visits", "busy"],
    }


def test_a_declared_usecase_gives_training_sets_and_online_reads(shop):
    spec = shop.spec
    training = build_training_set(shop, SHOP_DAYS[0], SHOP_DAYS[-1])
    assert training.feature_service == "shop_a_model_v1" and training.days == SHOP_DAYS
    assert [p["validation_id"] for p in training.partitions] == [f"test-{d}" for d in SHOP_DAYS]
    assert set(training.feature_columns) == set(spec.model_features)
    lake = pd.concat([shops.day_frame(day, SHOPS) for day in SHOP_DAYS], ignore_index=True)
    lake = lake.sort_values(["observed_at", "shop_id"]).reset_index(drop=True)
    frame = training.frame
    assert frame["units"].tolist() == lake["units"].tolist()
    # Each row joined to its own snapshot (same timestamp): the day's values, not another's.
    for name in spec.feature_columns:
        pd.testing.assert_series_equal(frame[name], lake[name], check_dtype=False)
    for name, values in _expected_ratios(lake).items():
        assert np.allclose(frame[name].astype(float), np.asarray(values, dtype=float)), name

    materialize_interval(shop, *days_interval(SHOP_DAYS))
    assert check_online(shop, SHOP_DAYS[-1]).served_day_values == SHOPS
    newest = shops.day_frame(SHOP_DAYS[-1], SHOPS)
    ids = [3, 1, 10_000, 5]
    served = OnlineFeatureReader(shop).read(ids)
    assert served["shop_id"] == ids
    rows = newest.set_index("shop_id").loc[[3, 1, 5]]
    for name in ("visits", "price", "region", "promo", "size_m2"):
        assert [served[name][i] for i in (0, 1, 3)] == rows[name].tolist(), name
    # A nullable feature: shop 5's temperature is missing, served as None.
    assert served["temperature"][3] is None
    assert served["visits"][2] is None, "an unknown shop has no values"
    expected = _expected_ratios(rows.reset_index())
    assert [served["busy"][i] for i in (0, 1, 3)] == expected["busy"]
    assert np.allclose([served["log_visits"][i] for i in (0, 1, 3)], expected["log_visits"])


_FRESH_PROCESS = r"""
import json, sys
from mlops_pipeline.config import get_settings
from mlops_pipeline.features.store import open_store
store = open_store(get_settings())
view = store.get_on_demand_feature_view("shop_ratios")
served = store.get_online_features(
    features=store.get_feature_service("shop_a_model_v1"),
    entity_rows=[{"shop_id": int(k)} for k in sys.argv[1:]],
).to_dict()
print(json.dumps({"udf": view.feature_transformation.udf_string, "served": served}))
"""


def test_the_registered_view_runs_the_usecase_function_in_a_fresh_process(shop):
    """Feast rebuilds a view's function from the registry's source text, with only pd and np
    in scope: the use case's function (a helper, an import) could not run from its own source,
    so the registry holds a stub that calls it."""
    from feast.transformation.udf_rehydrate import rehydrate_udf_from_source

    function = shop.spec.transform("shop_ratios")
    from_source = rehydrate_udf_from_source(
        inspect.getsource(function), preferred_name="shop_ratios"
    )
    with pytest.raises(NameError):
        from_source({"price": [1.0], "visits": [2]})

    materialize_interval(shop, *days_interval([SHOP_DAYS[-1]]))
    env = {**os.environ, **shop.to_env(), "PYTHONWARNINGS": "ignore"}
    ids = [2, 7]
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, *map(str, ids)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "run_registered_view('shop_a', 'shop_ratios', inputs)" in result["udf"]
    assert "math.log1p" in result["udf"], "the function's own source is kept for reading"
    rows = shops.day_frame(SHOP_DAYS[-1], SHOPS).set_index("shop_id").loc[ids].reset_index()
    expected = _expected_ratios(rows)
    assert result["served"]["busy"] == expected["busy"]
    assert np.allclose(result["served"]["log_visits"], expected["log_visits"])
    assert np.allclose(result["served"]["price_per_visit"], expected["price_per_visit"])


def test_a_changed_transform_is_registered_and_keeps_materialization_state(shop, usecases_dir):
    materialize_interval(shop, *days_interval([SHOP_DAYS[0]]))
    transforms = usecases_dir / "shop_a" / "transforms.py"
    transforms.write_text(transforms.read_text().replace("v > BUSY_VISITS", "v > 10"))
    sys.modules.pop("mlops_usecase_shop_a_transforms")  # as a new task process would
    registration = register_definitions(shop)
    assert registration.applied, "the registry must describe the function that runs"
    store = open_store(shop)
    registered = store.get_on_demand_feature_view("shop_ratios").feature_transformation
    assert "v > 10" in registered.udf_string
    assert len(store.get_feature_view("shop_day").materialization_intervals) == 1
    assert all(OnlineFeatureReader(shop).read([20, 30])["busy"])


def test_two_usecases_materialize_into_their_own_projects(shop):
    # shop_b declares the same entity key and view names; its values differ from shop_a's.
    other = shop.for_usecase("shop_b")
    shops.write_lake(other, SHOP_DAYS, SHOPS, offset=1000.0)
    assert other.feast_project != shop.feast_project and other.feast_dir != shop.feast_dir
    register_definitions(other)
    materialize_interval(shop, *days_interval([SHOP_DAYS[-1]]))
    before = materialized_ranges(shop)
    materialize_interval(other, *days_interval([SHOP_DAYS[0]]))
    assert materialized_ranges(shop) == before, "shop_b's work left shop_a's registry alone"
    assert materialized_ranges(other)["shop_day"]["to"] == "2025-06-03T00:00:00+00:00"
    assert before["shop_day"]["to"] == "2025-06-05T00:00:00+00:00"
    ids = [1, 2, 3]
    for settings, day, offset in ((shop, SHOP_DAYS[-1], 0.0), (other, SHOP_DAYS[0], 1000.0)):
        served = OnlineFeatureReader(settings).read(ids)
        assert served["price"] == shops.day_frame(day, SHOPS, offset)["price"][:3].tolist()
        assert check_online(settings, day).served_day_values == SHOPS
    assert (shop.feast_dir / "registry.db").exists() and (other.feast_dir / "registry.db").exists()
    assert open_store(other).get_feature_service("shop_b_model_v1")
    assert [s.name for s in open_store(shop).list_feature_services()] == ["shop_a_model_v1"]


def test_an_online_store_missing_the_partition_fails_permanently(shop):
    with pytest.raises(OnlineCheckFailed, match=r"shop_id=\d+: served timestamps") as raised:
        check_online(shop, SHOP_DAYS[0])
    assert isinstance(raised.value, PermanentFailure)
    with pytest.raises(OnlineCheckFailed, match="no validated partition"):
        check_online(shop, SHOP_DAYS[-1] + dt.timedelta(days=5))
