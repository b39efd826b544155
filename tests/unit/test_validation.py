"""The suite's rules, run through Great Expectations on small frames built here."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from mlops_pipeline.config import Settings
from mlops_pipeline.data import contract
from mlops_pipeline.data.datagen import SchemaBreak, generate_frame
from mlops_pipeline.data.ingestion import day_interval
from mlops_pipeline.data.validation import (
    BATCH,
    ROW,
    VALIDATED_DTYPES,
    GxProject,
    build_suite,
    conform_types,
)

DAY = dt.date(2025, 6, 2)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    home = tmp_path_factory.mktemp("gx-home")
    return GxProject(Settings(home=home, min_batch_rows=50, max_batch_rows=10_000))


def conformed(frame):
    return conform_types(pa.Table.from_pandas(frame, preserve_index=False))


def validate(project, frame):
    return project.validate(conformed(frame), "test", *day_interval(DAY))


def failed(outcome, level):
    return {e.name for e in outcome.expectations if e.level == level and not e.success}


def test_suite_covers_every_contract_column():
    suite = build_suite(1, 10)
    typed = {
        e.column for e in suite.expectations if e.expectation_type == "expect_column_type_to_be"
    }
    assert typed == set(contract.COLUMN_NAMES)
    levels = {e.meta["level"] for e in suite.expectations}
    assert levels == {BATCH, ROW}
    assert suite.meta["suite_version"] >= 1


def test_clean_batch_passes_everything(project):
    outcome = validate(project, generate_frame(DAY, 300))
    assert failed(outcome, BATCH) == set() and failed(outcome, ROW) == set()
    assert outcome.row_failures == {}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (SchemaBreak.RENAMED, "expect_table_columns_to_match_set"),
        (SchemaBreak.DROPPED, "expect_table_columns_to_match_set"),
        (SchemaBreak.RETYPED, "expect_column_type_to_be(tenure_months)"),
    ],
)
def test_schema_breaks_fail_at_batch_level(project, kind, expected):
    frame = generate_frame(DAY, 300, scenario="schema_break", schema_break=kind)
    assert expected in failed(validate(project, frame), BATCH)


def test_naive_timestamps_break_the_schema(project):
    frame = generate_frame(DAY, 300)
    frame[contract.EVENT_TIMESTAMP] = frame[contract.EVENT_TIMESTAMP].dt.tz_localize(None)
    assert "expect_column_type_to_be(event_timestamp)" in failed(validate(project, frame), BATCH)


def test_row_count_bounds(project):
    assert "expect_table_row_count_to_be_between" in failed(
        validate(project, generate_frame(DAY, 20)), BATCH
    )


def test_row_level_failures_point_at_the_rows(project):
    frame = generate_frame(DAY, 300)
    frame.loc[3, contract.EVENT_TIMESTAMP] = pd.Timestamp(DAY + dt.timedelta(days=1), tz="UTC")
    frame.loc[5, "region"] = None
    frame.loc[7, "num_devices"] = 0
    frame.loc[9, "monthly_charges"] = 10_000.0
    frame.loc[11, "payment_method"] = "cash"
    frame.loc[13, contract.ENTITY_KEY] = frame.loc[14, contract.ENTITY_KEY]
    frame.loc[13, contract.EVENT_TIMESTAMP] = frame.loc[14, contract.EVENT_TIMESTAMP]
    outcome = validate(project, frame)
    assert failed(outcome, BATCH) == set()
    assert outcome.row_failures == {
        3: ["expect_column_values_to_be_between(event_timestamp)"],
        5: ["expect_column_values_to_not_be_null(region)"],
        7: ["expect_column_values_to_be_between(num_devices)"],
        9: ["expect_column_values_to_be_between(monthly_charges)"],
        11: ["expect_column_values_to_be_in_set(payment_method)"],
        13: ["expect_compound_columns_to_be_unique(customer_id,event_timestamp)"],
        14: ["expect_compound_columns_to_be_unique(customer_id,event_timestamp)"],
    }


def test_conform_types_widens_only_what_is_lossless():
    frame = generate_frame(DAY, 50)
    frame["monthly_charges"] = frame["monthly_charges"].round().astype("int64")
    frame[contract.EVENT_TIMESTAMP] = frame[contract.EVENT_TIMESTAMP].astype("datetime64[s, UTC]")
    frame["tenure_months"] = frame["tenure_months"].astype(str)
    conformed_frame = conformed(frame)
    assert str(conformed_frame["monthly_charges"].dtype) == VALIDATED_DTYPES[contract.Kind.FLOAT]
    assert str(conformed_frame[contract.EVENT_TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert str(conformed_frame["plan"].dtype) == "category"
    # Text in a number column is not "fixed": the suite must see it.
    assert conformed_frame["tenure_months"].dtype == object
