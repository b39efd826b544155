from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.data.datagen import (
    DUPLICATE_FRACTION,
    NULL_BURST_FRACTION,
    OUT_OF_RANGE_FRACTION,
    SchemaBreak,
    faults_of,
    generate_day,
    generate_frame,
)
from mlops_pipeline.data.landing import read_landing_file
from mlops_pipeline.failures import SpecError

DAY = dt.date(2025, 6, 2)
ROWS = 2_000
CHURN = get_settings().for_usecase("churn").spec
DEMAND = get_settings().for_usecase("store_demand").spec


def churn_frame(day, rows, seed=7, scenario="clean", schema_break=None):
    return generate_frame(CHURN, day, rows, seed, scenario, schema_break)


def test_same_seed_same_data_other_seed_other_data():
    pd.testing.assert_frame_equal(churn_frame(DAY, ROWS, seed=3), churn_frame(DAY, ROWS, 3))
    assert not churn_frame(DAY, ROWS, seed=3).equals(churn_frame(DAY, ROWS, seed=4))


def _follows_the_contract(spec, frame, rows, day):
    assert tuple(frame.columns) == spec.column_names
    assert len(frame) == rows and frame[spec.entity.key].is_unique
    start = pd.Timestamp(spec.cadence.partition_of(day), tz="UTC")
    assert frame[spec.timestamp].between(start, start + spec.cadence.length, inclusive="left").all()
    for name, col in spec.columns.items():
        if not col.nullable:
            assert frame[name].notna().all(), name
        if col.min is not None:
            assert frame[name].min() >= col.min, name
        if col.max is not None:
            assert frame[name].max() <= col.max, name
        if col.values is not None:
            assert set(frame[name].dropna()) <= set(col.values), name


def test_clean_day_follows_the_contract():
    frame = churn_frame(DAY, ROWS)
    _follows_the_contract(CHURN, frame, ROWS, DAY)
    assert frame.notna().all().all()
    assert 0.08 < frame[CHURN.label].mean() < 0.35


def test_the_generator_is_the_use_cases_own():
    demand = generate_frame(DEMAND, DAY, 500)
    _follows_the_contract(DEMAND, demand, 500, DAY)
    # Settings select the use case as well as a loaded declaration does.
    settings = get_settings().for_usecase("store_demand")
    pd.testing.assert_frame_equal(generate_frame(settings, DAY, 500), demand)
    # The nullable column has its nulls (stores with no known competitor), and only it.
    assert 0.05 < demand["competitor_distance_km"].isna().mean() < 0.15
    assert demand.drop(columns="competitor_distance_km").notna().all().all()


def test_a_use_case_without_a_generator_is_named(tmp_path):
    from mlops_pipeline.usecases import load_usecase

    folder = tmp_path / "churn"
    folder.mkdir()
    (folder / "usecase.yaml").write_text((CHURN.folder / "usecase.yaml").read_text())
    with pytest.raises(SpecError, match="no generator.py"):
        generate_frame(load_usecase(folder), DAY, 10)


def test_customers_persist_across_days_and_age():
    first, later = churn_frame(DAY, ROWS), churn_frame(DAY + dt.timedelta(days=90), ROWS)
    assert (first["plan"] == later["plan"]).all()
    assert (later["tenure_months"] >= first["tenure_months"]).all()
    assert (later["tenure_months"] > first["tenure_months"]).mean() > 0.9


def _xy(spec, frame):
    features = frame[list(spec.feature_columns)].copy()
    for name in spec.categorical_features:
        features[name] = features[name].astype("category")
    return features, frame[spec.label]


@pytest.fixture(scope="module")
def clean_model():
    from sklearn.ensemble import HistGradientBoostingClassifier

    train = pd.concat([churn_frame(DAY + dt.timedelta(days=i), 10_000) for i in range(2)])
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    return model.fit(*_xy(CHURN, train))


def _auc(model, frame) -> float:
    from sklearn.metrics import roc_auc_score

    features, label = _xy(CHURN, frame)
    return roc_auc_score(label, model.predict_proba(features)[:, 1])


def test_label_is_learnable_but_not_trivially(clean_model):
    auc = _auc(clean_model, churn_frame(DAY + dt.timedelta(days=2), 10_000))
    assert 0.74 < auc < 0.86, auc


@pytest.fixture(scope="module")
def demand_model():
    from sklearn.ensemble import HistGradientBoostingRegressor

    train = pd.concat(
        [generate_frame(DEMAND, DAY + dt.timedelta(days=i), 20_000) for i in range(2)]
    )
    model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
    return model.fit(*_xy(DEMAND, train))


def _r2(model, frame) -> float:
    from sklearn.metrics import r2_score

    features, label = _xy(DEMAND, frame)
    return r2_score(label, model.predict(features))


def test_demand_is_learnable_but_honestly_noisy(demand_model):
    r2 = _r2(demand_model, generate_frame(DEMAND, DAY + dt.timedelta(days=2), 20_000))
    assert 0.6 < r2 < 0.85, r2


def test_demand_drifts_in_its_own_ways(demand_model):
    day = DAY + dt.timedelta(days=2)
    clean = generate_frame(DEMAND, day, 20_000)
    # Covariate drift: a price rise and a footfall slump.
    shifted = generate_frame(DEMAND, day, 20_000, scenario="covariate_drift")
    assert shifted["price_index"].mean() > 1.12 * clean["price_index"].mean()
    assert shifted["footfall_7d"].mean() < 0.8 * clean["footfall_7d"].mean()
    # Concept drift: the same features, a steeper price elasticity.
    drifted = generate_frame(DEMAND, day, 20_000, scenario="concept_drift")
    features = [c for c in DEMAND.column_names if c != DEMAND.label]
    pd.testing.assert_frame_equal(clean[features], drifted[features])
    assert _r2(demand_model, drifted) < _r2(demand_model, clean) - 0.08


def test_covariate_drift_shifts_features_not_the_mechanism():
    clean = churn_frame(DAY, ROWS)
    drifted = churn_frame(DAY, ROWS, scenario="covariate_drift")
    assert drifted["monthly_charges"].mean() > 1.2 * clean["monthly_charges"].mean()
    assert drifted["avg_daily_usage_minutes"].mean() < 0.8 * clean["avg_daily_usage_minutes"].mean()
    assert (drifted["contract_type"] == "month_to_month").mean() > (
        clean["contract_type"] == "month_to_month"
    ).mean()


def test_concept_drift_keeps_features_and_breaks_the_model(clean_model):
    day = DAY + dt.timedelta(days=2)
    clean = churn_frame(day, 10_000)
    drifted = churn_frame(day, 10_000, scenario="concept_drift")
    features = [c for c in CHURN.column_names if c != CHURN.label]
    pd.testing.assert_frame_equal(clean[features], drifted[features])
    assert _auc(clean_model, drifted) < _auc(clean_model, clean) - 0.12


@pytest.mark.parametrize("spec", [CHURN, DEMAND], ids=["churn", "store_demand"])
@pytest.mark.parametrize("kind", list(SchemaBreak))
def test_schema_break_variants(spec, kind):
    frame = generate_frame(spec, DAY, ROWS, scenario="schema_break", schema_break=kind)
    faults = faults_of(spec)
    name = faults.schema_break_column(kind)
    if kind is SchemaBreak.RETYPED:
        unit = faults.retyped[1]
        assert frame[name].dtype == object and frame[name].str.endswith(f" {unit}").all()
    else:
        assert name not in frame.columns
    if kind is SchemaBreak.RENAMED:
        assert faults.renamed[1] in frame.columns


def test_churn_faults_hit_the_columns_they_always_did():
    faults = faults_of(CHURN)
    assert faults.schema_break_column("renamed") == "monthly_charges"
    assert faults.renamed[1] == "monthly_charge"
    assert faults.schema_break_column("dropped") == "days_since_last_login"
    assert faults.retyped == ("tenure_months", "months")


@pytest.mark.parametrize("spec", [CHURN, DEMAND], ids=["churn", "store_demand"])
def test_null_burst_out_of_range_and_duplicates_damage_what_they_say(spec):
    faults = faults_of(spec)
    nulls = generate_frame(spec, DAY, ROWS, scenario="null_burst")
    for name in faults.null_burst:
        assert nulls[name].isna().sum() == round(ROWS * NULL_BURST_FRACTION), name

    bad = generate_frame(spec, DAY, ROWS, scenario="out_of_range")
    category, value = faults.out_of_range_category
    assert value not in spec.column(category).values
    damaged = (bad[faults.out_of_range_number] < spec.column(faults.out_of_range_number).min) | (
        ~bad[category].isin(spec.column(category).values)
    )
    assert damaged.sum() == max(1, round(ROWS * OUT_OF_RANGE_FRACTION))

    dups = generate_frame(spec, DAY, ROWS, scenario="duplicates")
    extra = max(1, round(ROWS * DUPLICATE_FRACTION))
    assert len(dups) == ROWS + extra
    assert dups.duplicated([spec.entity.key, spec.timestamp]).sum() == extra


def test_empty_keeps_the_header(settings):
    day = generate_day(settings, DAY, ROWS, scenario="empty")
    assert day.rows == 0
    assert day.path.read_text().strip().split(",") == list(CHURN.column_names)


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_corrupt_file_cannot_be_read(settings, file_format):
    day = generate_day(settings, DAY, ROWS, scenario="corrupt", file_format=file_format)
    with pytest.raises(Exception):  # noqa: B017 - pyarrow raises several error types
        read_landing_file(day.path)


@pytest.mark.parametrize("usecase", ["churn", "store_demand"])
@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_landing_file_round_trips(settings, usecase, file_format):
    from mlops_pipeline.data.conform import conform_types

    settings = settings.for_usecase(usecase)
    spec = settings.spec
    expected = generate_frame(spec, DAY, 300)
    day = generate_day(settings, DAY, 300, file_format=file_format)
    assert day.path.name == f"{spec.dataset}.{file_format}"
    assert day.path.parent.name == f"date={DAY.isoformat()}"
    assert day.path.parent.parent == settings.landing_dir
    read = conform_types(spec, read_landing_file(day.path))
    assert len(read) == 300
    for name in spec.column_names:
        left, right = read[name], expected[name]
        if isinstance(left.dtype, pd.CategoricalDtype):
            left = left.astype(object)
        np.testing.assert_array_equal(left.to_numpy(), right.to_numpy(), err_msg=name)


def test_a_weekly_use_case_generates_its_week(settings):
    weekly = settings.replace(usecase_overrides='{"churn": {"cadence": "weekly"}}')
    wednesday = dt.date(2025, 6, 4)
    day = generate_day(weekly, wednesday, 700)
    monday = dt.date(2025, 6, 2)
    assert day.path.parent.name == f"date={monday.isoformat()}"
    frame = generate_frame(weekly.spec, wednesday, 700)
    pd.testing.assert_frame_equal(frame, generate_frame(weekly.spec, monday, 700))
    _follows_the_contract(weekly.spec, frame, 700, monday)
    # One snapshot per customer, spread over the whole week.
    assert frame[CHURN.timestamp].dt.dayofweek.nunique() == 7


def test_an_hourly_use_case_generates_its_hour(settings):
    hourly = settings.replace(usecase_overrides='{"churn": {"cadence": "hourly"}}')
    hour = dt.datetime(2025, 6, 2, 5)
    day = generate_day(hourly, dt.datetime(2025, 6, 2, 5, 30), 700)
    assert day.path.parent.name == "date=2025-06-02T05"
    frame = generate_frame(hourly.spec, hour, 700)
    _follows_the_contract(hourly.spec, frame, 700, hour)
    # The next hour is its own: its timestamps, and labels drawn again.
    later = generate_frame(hourly.spec, hour + dt.timedelta(hours=1), 700)
    assert later[CHURN.timestamp].min() >= pd.Timestamp("2025-06-02T06:00:00Z")
    assert not later[CHURN.label].equals(frame[CHURN.label])


def test_faults_default_to_columns_the_contract_offers(tmp_path):
    from mlops_pipeline.usecases import load_usecase

    folder = tmp_path / "store_demand"
    folder.mkdir()
    for name in ("usecase.yaml", "transforms.py"):
        (folder / name).write_text((DEMAND.folder / name).read_text())
    # The use case's generator without its fault choices.
    source = (DEMAND.folder / "generator.py").read_text()
    start = source.index("# What the fault scenarios damage")
    end = source.index("def population")
    (folder / "generator.py").write_text(source[:start] + source[end:])
    spec = load_usecase(folder)
    faults = faults_of(spec)
    # Non-nullable columns only; the out-of-range number has a lower bound to fall under.
    assert "competitor_distance_km" not in {*faults.null_burst, faults.out_of_range_number}
    assert spec.column(faults.out_of_range_number).min >= 0
    assert (
        faults.out_of_range_category[1] not in spec.column(faults.out_of_range_category[0]).values
    )
    bad = generate_frame(spec, DAY, ROWS, scenario="out_of_range")
    number, (category, _) = faults.out_of_range_number, faults.out_of_range_category
    damaged = (bad[number] < spec.column(number).min) | ~bad[category].isin(
        spec.column(category).values
    )
    assert damaged.sum() == max(1, round(ROWS * OUT_OF_RANGE_FRACTION))
    renamed = generate_frame(spec, DAY, 50, scenario="schema_break")
    assert faults.renamed[0] not in renamed and faults.renamed[1] in renamed
