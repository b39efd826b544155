from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.data import contract
from mlops_pipeline.data.datagen import (
    DUPLICATE_FRACTION,
    NULL_BURST_FRACTION,
    OUT_OF_RANGE_FRACTION,
    SCHEMA_BREAK_COLUMN,
    SchemaBreak,
    generate_day,
    generate_frame,
)
from mlops_pipeline.data.ingestion import read_landing_file

DAY = dt.date(2025, 6, 2)
ROWS = 2_000


def test_same_seed_same_data_other_seed_other_data():
    pd.testing.assert_frame_equal(generate_frame(DAY, ROWS, seed=3), generate_frame(DAY, ROWS, 3))
    assert not generate_frame(DAY, ROWS, seed=3).equals(generate_frame(DAY, ROWS, seed=4))


def test_clean_day_follows_the_contract():
    frame = generate_frame(DAY, ROWS)
    assert tuple(frame.columns) == contract.COLUMN_NAMES
    assert len(frame) == ROWS and frame[contract.ENTITY_KEY].is_unique
    start = pd.Timestamp(DAY, tz="UTC")
    assert (
        frame[contract.EVENT_TIMESTAMP]
        .between(start, start + pd.Timedelta(days=1), inclusive="left")
        .all()
    )
    assert frame.notna().all().all()
    for col in contract.COLUMNS:
        if col.minimum is not None:
            assert frame[col.name].min() >= col.minimum
        if col.maximum is not None:
            assert frame[col.name].max() <= col.maximum
        if col.values is not None:
            assert set(frame[col.name]) <= set(col.values)
    assert 0.08 < frame[contract.LABEL].mean() < 0.35


def test_customers_persist_across_days_and_age():
    first, later = generate_frame(DAY, ROWS), generate_frame(DAY + dt.timedelta(days=90), ROWS)
    assert (first["plan"] == later["plan"]).all()
    assert (later["tenure_months"] >= first["tenure_months"]).all()
    assert (later["tenure_months"] > first["tenure_months"]).mean() > 0.9


def _xy(frame):
    features = frame[list(contract.FEATURE_COLUMNS)].copy()
    for name in contract.CATEGORICAL_FEATURES:
        features[name] = features[name].astype("category")
    return features, frame[contract.LABEL]


@pytest.fixture(scope="module")
def clean_model():
    from sklearn.ensemble import HistGradientBoostingClassifier

    train = pd.concat([generate_frame(DAY + dt.timedelta(days=i), 10_000) for i in range(2)])
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    return model.fit(*_xy(train))


def _auc(model, frame) -> float:
    from sklearn.metrics import roc_auc_score

    features, label = _xy(frame)
    return roc_auc_score(label, model.predict_proba(features)[:, 1])


def test_label_is_learnable_but_not_trivially(clean_model):
    auc = _auc(clean_model, generate_frame(DAY + dt.timedelta(days=2), 10_000))
    assert 0.74 < auc < 0.86, auc


def test_covariate_drift_shifts_features_not_the_mechanism():
    clean = generate_frame(DAY, ROWS)
    drifted = generate_frame(DAY, ROWS, scenario="covariate_drift")
    assert drifted["monthly_charges"].mean() > 1.2 * clean["monthly_charges"].mean()
    assert drifted["avg_daily_usage_minutes"].mean() < 0.8 * clean["avg_daily_usage_minutes"].mean()
    assert (drifted["contract_type"] == "month_to_month").mean() > (
        clean["contract_type"] == "month_to_month"
    ).mean()


def test_concept_drift_keeps_features_and_breaks_the_model(clean_model):
    day = DAY + dt.timedelta(days=2)
    clean = generate_frame(day, 10_000)
    drifted = generate_frame(day, 10_000, scenario="concept_drift")
    features = [c for c in contract.COLUMN_NAMES if c != contract.LABEL]
    pd.testing.assert_frame_equal(clean[features], drifted[features])
    assert _auc(clean_model, drifted) < _auc(clean_model, clean) - 0.12


@pytest.mark.parametrize("kind", list(SchemaBreak))
def test_schema_break_variants(kind):
    frame = generate_frame(DAY, ROWS, scenario="schema_break", schema_break=kind)
    name = SCHEMA_BREAK_COLUMN[kind]
    if kind is SchemaBreak.RETYPED:
        assert frame[name].dtype == object and frame[name].str.endswith(" months").all()
    else:
        assert name not in frame.columns
    if kind is SchemaBreak.RENAMED:
        assert "monthly_charge" in frame.columns


def test_null_burst_out_of_range_and_duplicates_damage_what_they_say():
    nulls = generate_frame(DAY, ROWS, scenario="null_burst")
    assert nulls["monthly_charges"].isna().sum() == round(ROWS * NULL_BURST_FRACTION)

    bad = generate_frame(DAY, ROWS, scenario="out_of_range")
    damaged = (bad["monthly_charges"] < 0) | ~bad["plan"].isin(contract.PLANS)
    assert damaged.sum() == max(1, round(ROWS * OUT_OF_RANGE_FRACTION))

    dups = generate_frame(DAY, ROWS, scenario="duplicates")
    extra = max(1, round(ROWS * DUPLICATE_FRACTION))
    assert len(dups) == ROWS + extra
    assert dups.duplicated([contract.ENTITY_KEY, contract.EVENT_TIMESTAMP]).sum() == extra


def test_empty_keeps_the_header(tmp_path):
    day = generate_day(tmp_path, DAY, ROWS, scenario="empty")
    assert day.rows == 0
    assert day.path.read_text().strip().split(",") == list(contract.COLUMN_NAMES)


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_corrupt_file_cannot_be_read(tmp_path, file_format):
    day = generate_day(tmp_path, DAY, ROWS, scenario="corrupt", file_format=file_format)
    with pytest.raises(Exception):  # noqa: B017 - pyarrow raises several error types
        read_landing_file(day.path)


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_landing_file_round_trips(tmp_path, file_format):
    from mlops_pipeline.data.validation import conform_types

    expected = generate_frame(DAY, 300)
    day = generate_day(tmp_path, DAY, 300, file_format=file_format)
    assert day.path.name == f"customer_activity.{file_format}"
    assert day.path.parent.name == f"date={DAY.isoformat()}"
    read = conform_types(read_landing_file(day.path))
    assert len(read) == 300
    for name in contract.COLUMN_NAMES:
        left, right = read[name], expected[name]
        if isinstance(left.dtype, pd.CategoricalDtype):
            left = left.astype(object)
        np.testing.assert_array_equal(left.to_numpy(), right.to_numpy(), err_msg=name)
