"""The suite's rules, run through Great Expectations on small frames built here."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops_pipeline.config import Settings
from mlops_pipeline.data.conform import VALIDATED_DTYPES, conform_types, unparsable_values
from mlops_pipeline.data.contract import Kind
from mlops_pipeline.data.datagen import SchemaBreak, generate_frame
from mlops_pipeline.data.duplicates import entity_duplicates
from mlops_pipeline.data.expectation_outcomes import BATCH, ROW
from mlops_pipeline.data.ingestion import partition_interval
from mlops_pipeline.data.validation import GxProject, build_suite, suite_name

DAY = dt.date(2025, 6, 2)
RULES = {"min_batch_rows": 50, "max_batch_rows": 10_000}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("gx-home")


@pytest.fixture(scope="module")
def project(home):
    return GxProject(Settings(home=home, usecase="churn", **RULES))


@pytest.fixture(scope="module")
def demand_project(home):
    # The same Great Expectations project: each dataset keeps its own suite and assets.
    return GxProject(Settings(home=home, usecase="store_demand", **RULES))


def churn_frame(rows, **scenario):
    return generate_frame(Settings(usecase="churn").spec, DAY, rows, **scenario)


def conformed(spec, frame):
    return conform_types(spec, pa.Table.from_pandas(frame, preserve_index=False))


def validate(project, frame, day=DAY):
    interval = partition_interval(project.spec.cadence, day)
    return project.validate(conformed(project.spec, frame), "test", *interval)


def failed(outcome, level):
    return {e.name for e in outcome.expectations if e.level == level and not e.success}


@pytest.mark.parametrize("usecase", ["churn", "store_demand"])
def test_suite_covers_every_contract_column(usecase):
    spec = Settings(usecase=usecase).spec
    suite = build_suite(spec, 1, 10)
    assert suite.name == f"{spec.dataset}_daily" == suite_name(spec)
    typed = {
        e.column for e in suite.expectations if e.expectation_type == "expect_column_type_to_be"
    }
    assert typed == set(spec.column_names)
    levels = {e.meta["level"] for e in suite.expectations}
    assert levels == {BATCH, ROW}
    assert suite.meta["suite_version"] >= 1
    not_null = {
        e.column
        for e in suite.expectations
        if e.expectation_type == "expect_column_values_to_not_be_null"
    }
    nullable = {name for name, col in spec.columns.items() if col.nullable}
    assert not_null and not (not_null & nullable)


def test_clean_batch_passes_everything(project):
    outcome = validate(project, churn_frame(300))
    assert failed(outcome, BATCH) == set() and failed(outcome, ROW) == set()
    assert outcome.row_failures == {}


def test_store_demand_passes_its_own_suite(project, demand_project):
    spec = demand_project.spec
    frame = generate_frame(spec, DAY, 400)
    assert frame["competitor_distance_km"].isna().any()
    outcome = validate(demand_project, frame)
    assert failed(outcome, BATCH) == set() and failed(outcome, ROW) == set()
    # ...and fails churn's: the suites are the datasets' own.
    assert "expect_table_columns_to_match_set" in failed(validate(project, frame), BATCH)
    assert demand_project.asset != project.asset
    assert demand_project.suite_name == "store_sales_daily"


def test_nullable_columns_nulls_are_valid_but_not_other_columns(demand_project):
    frame = generate_frame(demand_project.spec, DAY, 300)
    frame.loc[:9, "competitor_distance_km"] = None  # nullable
    frame.loc[20, "temperature_c"] = None  # not nullable
    frame.loc[21, "store_format"] = None  # not nullable
    outcome = validate(demand_project, frame)
    assert failed(outcome, BATCH) == set()
    assert outcome.row_failures == {
        20: ["expect_column_values_to_not_be_null(temperature_c)"],
        21: ["expect_column_values_to_not_be_null(store_format)"],
    }


@pytest.mark.parametrize("kind", [Kind.INT, Kind.BOOL, Kind.CATEGORY, Kind.FLOAT])
def test_nullable_columns_of_every_kind_keep_their_nulls(home, kind):
    column = {
        Kind.INT: "opened_years_ago",
        Kind.BOOL: "has_parking",
        Kind.CATEGORY: "city_tier",
        Kind.FLOAT: "floor_area_sqm",
    }[kind]
    overrides = f'{{"store_demand": {{"columns": {{"{column}": {{"nullable": true}}}}}}}}'
    settings = Settings(home=home, usecase="store_demand", usecase_overrides=overrides, **RULES)
    frame = generate_frame(settings.spec, DAY, 200)
    frame[column] = frame[column].astype(object)
    frame.loc[[3, 4], column] = None
    outcome = validate(GxProject(settings), frame)
    assert failed(outcome, BATCH) == set() and outcome.row_failures == {}
    # Every value is left as it is and the nulls stay nulls.
    values = conformed(settings.spec, frame)[column]
    assert values.isna().sum() == 2 and values.notna().sum() == 198


def test_a_null_in_a_non_nullable_int_column_breaks_its_type(project):
    frame = churn_frame(300)
    frame["num_devices"] = frame["num_devices"].astype("float64")
    frame.loc[4, "num_devices"] = None
    assert "expect_column_type_to_be(num_devices)" in failed(validate(project, frame), BATCH)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (SchemaBreak.RENAMED, "expect_table_columns_to_match_set"),
        (SchemaBreak.DROPPED, "expect_table_columns_to_match_set"),
        (SchemaBreak.RETYPED, "expect_column_type_to_be(tenure_months)"),
    ],
)
def test_schema_breaks_fail_at_batch_level(project, kind, expected):
    frame = churn_frame(300, scenario="schema_break", schema_break=kind)
    assert expected in failed(validate(project, frame), BATCH)


def test_naive_timestamps_break_the_schema(project):
    frame = churn_frame(300)
    frame["event_timestamp"] = frame["event_timestamp"].dt.tz_localize(None)
    assert "expect_column_type_to_be(event_timestamp)" in failed(validate(project, frame), BATCH)


def test_row_count_bounds(project):
    assert "expect_table_row_count_to_be_between" in failed(
        validate(project, churn_frame(20)), BATCH
    )


def test_row_level_failures_point_at_the_rows(project):
    frame = churn_frame(300)
    frame.loc[3, "event_timestamp"] = pd.Timestamp(DAY + dt.timedelta(days=1), tz="UTC")
    frame.loc[5, "region"] = None
    frame.loc[7, "num_devices"] = 0
    frame.loc[9, "monthly_charges"] = 10_000.0
    frame.loc[11, "payment_method"] = "cash"
    frame.loc[13, "customer_id"] = frame.loc[14, "customer_id"]
    frame.loc[13, "event_timestamp"] = frame.loc[14, "event_timestamp"]
    outcome = validate(project, frame)
    assert failed(outcome, BATCH) == set()
    assert outcome.row_failures == {
        3: ["expect_column_values_to_be_between(event_timestamp)"],
        5: ["expect_column_values_to_not_be_null(region)"],
        7: ["expect_column_values_to_be_between(num_devices)"],
        9: ["expect_column_values_to_be_between(monthly_charges)"],
        11: ["expect_column_values_to_be_in_set(payment_method)"],
        # Row 14 re-sends row 13's snapshot with other values: the later row is kept.
        13: ["entity_row_is_latest(customer_id)"],
    }


def test_conform_types_widens_only_what_is_lossless():
    frame = churn_frame(50)
    frame["monthly_charges"] = frame["monthly_charges"].round().astype("int64")
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[s, UTC]")
    frame["tenure_months"] = frame["tenure_months"].astype(str)
    conformed_frame = conformed(Settings(usecase="churn").spec, frame)
    assert str(conformed_frame["monthly_charges"].dtype) == VALIDATED_DTYPES[Kind.FLOAT]
    assert str(conformed_frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(conformed_frame["plan"].dtype) == "category"
    # Text in a number column is not "fixed": the suite must see it.
    assert conformed_frame["tenure_months"].dtype == object


def test_weekly_partitions_expect_rows_of_their_whole_week(home):
    weekly = Settings(
        home=home, usecase="churn", usecase_overrides='{"churn": {"cadence": "weekly"}}', **RULES
    )
    project = GxProject(weekly)
    assert project.suite_name == "customer_activity_weekly"
    wednesday = dt.date(2025, 6, 4)
    frame = generate_frame(weekly.spec, wednesday, 300)
    frame.loc[5, "event_timestamp"] = pd.Timestamp("2025-06-09T00:00:00Z")  # next Monday
    frame.loc[6, "event_timestamp"] = pd.Timestamp("2025-06-01T23:59:59Z")  # the Sunday before
    frame.loc[7, "event_timestamp"] = pd.Timestamp("2025-06-08T23:59:59Z")  # its last second
    outcome = validate(project, frame, wednesday)
    assert outcome.row_failures == {
        5: ["expect_column_values_to_be_between(event_timestamp)"],
        6: ["expect_column_values_to_be_between(event_timestamp)"],
    }


MARKED = '{"churn": {"columns": {"num_devices": {"null_markers": ["n/a", "-999"]}}}}'


def test_a_marked_int_column_is_judged_row_by_row(home):
    marked = Settings(home=home, usecase="churn", usecase_overrides=MARKED, **RULES)
    not_null = {
        e.column
        for e in build_suite(marked.spec, 1, 10).expectations
        if e.expectation_type == "expect_column_values_to_not_be_null"
    }
    assert "num_devices" in not_null
    assert "num_devices" not in {
        e.column
        for e in build_suite(Settings(usecase="churn").spec, 1, 10).expectations
        if e.expectation_type == "expect_column_values_to_not_be_null"
    }, "unmarked int columns keep their cheaper type check"
    frame = churn_frame(200)
    # Typed numbers, as a Parquet file holds them: the number marker matches as a number.
    frame.loc[4, "num_devices"] = -999
    frame.loc[6, "num_devices"] = -998  # no marker: an out-of-range value
    outcome = validate(GxProject(marked), frame)
    assert failed(outcome, BATCH) == set()
    assert outcome.row_failures == {
        4: ["expect_column_values_to_not_be_null(num_devices)"],
        6: ["expect_column_values_to_be_between(num_devices)"],
    }


def test_the_first_unparsable_value_is_found_across_chunks():
    spec = Settings(usecase_overrides=MARKED, usecase="churn").spec
    frame = churn_frame(300)
    frame["num_devices"] = frame["num_devices"].astype(str)
    frame.loc[[10, 150], "num_devices"] = "n/a"  # declared: nulls
    frame.loc[[211, 260], "num_devices"] = "two"
    frame["tenure_months"] = frame["tenure_months"].astype("float64")
    frame.loc[30, "tenure_months"] = np.nan
    frame.loc[40, "tenure_months"] = 2.5
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = pa.concat_tables([table.slice(0, 100), table.slice(100, 100), table.slice(200)])
    assert table.column("num_devices").num_chunks == 3
    assert unparsable_values(spec, table) == {
        "num_devices": "row 212 holds 'two', which is not an int",
        "tenure_months": "row 31 is empty (the column is not nullable)",
    }
    assert unparsable_values(spec, pa.Table.from_pandas(churn_frame(50))) == {}


def _entities(keys, seconds, **extra):
    return pd.DataFrame(
        {
            "customer_id": keys,
            "event_timestamp": pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta(seconds, unit="s"),
            "monthly_charges": extra.get("charges", [1.0] * len(keys)),
        }
    )


def test_entity_duplicates_follow_the_declared_rule():
    latest = Settings(usecase="churn").spec
    reject = Settings(
        usecase="churn", usecase_overrides='{"churn": {"entity": {"duplicates": "reject"}}}'
    ).spec
    frame = _entities(
        [1, 2, 1, 3, 1, 3, 3],
        [5, 0, 9, 0, 9, 4, 4],
        charges=[1.0, 1.0, 2.0, 1.0, 3.0, 1.0, 1.0],
    )
    # Entity 1: three snapshots, the last two at one time (the later row wins); entity 3: one
    # row and two exact copies of another one.
    outcomes, failures = entity_duplicates(latest, frame)
    assert failures == {
        0: ["entity_row_is_latest(customer_id)"],
        2: ["entity_row_is_latest(customer_id)"],
        3: ["entity_row_is_latest(customer_id)"],
        6: ["row_is_not_a_copy"],
    }
    assert [(o.name, o.success, o.unexpected_count) for o in outcomes] == [
        ("row_is_not_a_copy", False, 1),
        ("entity_row_is_latest(customer_id)", False, 3),
    ]
    _, failures = entity_duplicates(reject, frame)
    assert failures == {
        2: ["entity_row_is_first(customer_id)"],
        4: ["entity_row_is_first(customer_id)"],
        5: ["entity_row_is_first(customer_id)"],
        6: ["row_is_not_a_copy"],
    }
    # A row failing another expectation is not a snapshot: it supersedes nothing.
    _, failures = entity_duplicates(latest, frame, failing={2, 4})
    assert failures == {3: ["entity_row_is_latest(customer_id)"], 6: ["row_is_not_a_copy"]}
    outcomes, failures = entity_duplicates(latest, _entities([1, 2, 3], [0, 0, 0]))
    assert failures == {} and all(o.success for o in outcomes)
