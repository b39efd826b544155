"""Ingestion without Airflow: split, thresholds, idempotence, never touching the raw file."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from mlops_pipeline.data import ingestion_report, landing, storage
from mlops_pipeline.data.datagen import generate_day, generate_frame, write_landing_file
from mlops_pipeline.data.ingestion import BatchRejected, LandingFileMissing, ingest_day
from mlops_pipeline.data.partition_write import FAILED_EXPECTATIONS
from mlops_pipeline.failures import PermanentFailure
from tests.conftest import prometheus_samples

DAY = dt.date(2025, 6, 2)
ROWS = 400


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_landing_file_is_reported(settings):
    with pytest.raises(LandingFileMissing, match="customer_activity for 2025-06-02"):
        ingest_day(settings, DAY)
    assert issubclass(LandingFileMissing, PermanentFailure)
    assert issubclass(BatchRejected, PermanentFailure)


def test_bad_rows_under_budget_are_quarantined_with_reasons(settings):
    landed = generate_day(settings, DAY, ROWS, scenario="out_of_range")
    raw_before = _sha(landed.path)
    report = ingest_day(settings, DAY)
    assert (report.status, report.rows_valid, report.rows_quarantined) == ("validated", 398, 2)
    quarantined = pd.read_parquet(storage.partition_dir(settings.quarantine_dir, DAY))
    assert sorted(quarantined[FAILED_EXPECTATIONS]) == [
        "expect_column_values_to_be_between(monthly_charges)",
        "expect_column_values_to_be_in_set(plan)",
    ]
    lake = pd.read_parquet(storage.partition_dir(settings.lake_dir, DAY))
    assert len(lake) == 398 and (lake["monthly_charges"] >= 0).all()
    assert set(lake["plan"]) <= set(settings.spec.column("plan").values)
    assert _sha(landed.path) == raw_before


def test_threshold_is_configurable(settings):
    lenient = settings.replace(min_batch_rows=50, max_bad_row_fraction=0.10)
    generate_day(lenient, DAY, ROWS, scenario="null_burst")
    report = ingest_day(lenient, DAY)
    assert report.status == "validated" and report.rows_quarantined == 20

    strict = settings.replace(min_batch_rows=50, max_bad_row_fraction=0.01)
    with pytest.raises(BatchRejected, match=r"20 of 400 rows \(5\.00%\).*not_be_null"):
        ingest_day(strict, DAY)
    # The rejected day leaves no validated copy behind, and keeps its quarantined rows.
    assert not storage.partition_dir(strict.lake_dir, DAY).exists()
    assert len(pd.read_parquet(storage.partition_dir(strict.quarantine_dir, DAY))) == 20


def test_rerun_gives_the_same_partition_and_validation_id(settings):
    generate_day(settings, DAY, ROWS, scenario="duplicates")
    first = ingest_day(settings, DAY)
    data = storage.partition_dir(settings.lake_dir, DAY) / "part-0.parquet"
    before = data.read_bytes()
    second = ingest_day(settings, DAY)
    assert data.read_bytes() == before
    assert first.validation_id == second.validation_id
    manifest = storage.read_manifest(storage.partition_dir(settings.lake_dir, DAY))
    assert manifest["content_sha256"] == hashlib.sha256(before).hexdigest()
    assert manifest["validation_id"] == first.validation_id
    # Only the final partition is left: no staging or retired folders.
    assert [p.name for p in settings.lake_dir.iterdir()] == [f"date={DAY.isoformat()}"]


def test_reports_are_kept_for_failures_too(settings):
    generate_day(settings, DAY, ROWS, scenario="schema_break")
    with pytest.raises(BatchRejected) as rejected:
        ingest_day(settings, DAY)
    report = rejected.value.report
    assert "monthly_charges" in str(rejected.value)
    assert report.validation_result and (settings.validations_dir).exists()
    assert (settings.data_docs_dir / "index.html").exists()
    manifest = storage.read_manifest(storage.partition_dir(settings.quarantine_dir, DAY))
    assert manifest["status"] == "rejected"


def _gauges(path) -> dict[str, float]:
    return {
        name + str(sorted(labels.items()) or ""): value
        for name, labels, value in prometheus_samples(path.read_text())
    }


def _key(name: str, **labels: str) -> str:
    return name + str(sorted(labels.items()) or "")


CHURN = {"dataset": "customer_activity", "model": "churn-classifier"}


def test_the_newest_days_quarantine_rate_is_exported_for_prometheus(settings):
    newest = DAY + dt.timedelta(days=1)
    generate_day(settings, newest, ROWS, scenario="out_of_range")
    ingest_day(settings, newest)
    textfile = ingestion_report.prometheus_textfile(settings)
    assert textfile == settings.reports_dir / "ingestion" / "customer_activity.prom"
    exported = _gauges(textfile)
    assert exported[_key("mlops_quarantine_rate", **CHURN)] == 2 / ROWS
    assert exported[_key("mlops_ingestion_rows", **CHURN, kind="quarantined")] == 2
    assert exported[_key("mlops_ingestion_batch_passed", **CHURN)] == 1
    # Re-running an older (clean) day keeps the newest day's figures.
    generate_day(settings, DAY, ROWS)
    ingest_day(settings, DAY)
    assert _gauges(textfile)[_key("mlops_quarantine_rate", **CHURN)] == 2 / ROWS


def test_two_use_cases_ingest_side_by_side(settings):
    demand = settings.for_usecase("store_demand")
    generate_day(settings, DAY, ROWS, scenario="out_of_range")
    generate_day(demand, DAY, ROWS)
    churn_report, demand_report = ingest_day(settings, DAY), ingest_day(demand, DAY)
    assert (demand_report.status, demand_report.rows_quarantined) == ("validated", 0)
    assert demand_report.dataset == "store_sales" and churn_report.rows_quarantined == 2
    # Each dataset has its own lake, reports and textfile, labelled with its model.
    assert ingestion_report.report_path(demand, DAY).exists()
    assert ingestion_report.report_path(settings, DAY).exists()
    labels = {"dataset": "store_sales", "model": "store-demand-regressor"}
    rate = "mlops_quarantine_rate"
    assert _gauges(ingestion_report.prometheus_textfile(demand))[_key(rate, **labels)] == 0
    assert _gauges(ingestion_report.prometheus_textfile(settings))[_key(rate, **CHURN)] == 2 / ROWS
    lake = pd.read_parquet(storage.partition_dir(demand.lake_dir, DAY))
    assert len(lake) == ROWS and set(lake.columns) == set(demand.spec.column_names)
    # The nullable column keeps its nulls in the lake.
    assert lake["competitor_distance_km"].isna().any()
    manifest = storage.read_manifest(storage.partition_dir(demand.lake_dir, DAY))
    assert (manifest["suite"], manifest["dataset"]) == ("store_sales_daily", "store_sales")


def test_a_non_nullable_columns_nulls_are_quarantined(settings):
    demand = settings.for_usecase("store_demand")
    frame = generate_frame(demand.spec, DAY, ROWS)
    frame.loc[[1, 2], "competitor_distance_km"] = None  # nullable: valid rows
    frame.loc[3, "temperature_c"] = None  # not nullable: quarantined
    write_landing_file(frame, storage.landing_file(demand, DAY), demand.spec.timestamp)
    report = ingest_day(demand, DAY)
    assert (report.rows_valid, report.rows_quarantined) == (ROWS - 1, 1)
    quarantined = pd.read_parquet(storage.partition_dir(demand.quarantine_dir, DAY))
    assert list(quarantined[FAILED_EXPECTATIONS]) == [
        "expect_column_values_to_not_be_null(temperature_c)"
    ]


WEEKLY = '{"churn": {"cadence": "weekly"}}'


def test_a_weekly_partition_lands_and_is_ingested_under_its_monday(settings):
    weekly = settings.replace(usecase_overrides=WEEKLY)
    monday, thursday = dt.date(2025, 6, 2), dt.date(2025, 6, 5)
    frame = generate_frame(weekly.spec, thursday, ROWS)
    # A row of the next week in this week's file is a bad row: quarantined, not the batch.
    frame.loc[7, "event_timestamp"] = pd.Timestamp("2025-06-09T08:00:00Z")
    landing = storage.landing_file(weekly, thursday, "parquet")
    assert landing.parent.name == "date=2025-06-02"
    write_landing_file(frame, landing, weekly.spec.timestamp)
    report = ingest_day(weekly, thursday)
    assert (report.day, report.rows_valid, report.rows_quarantined) == ("2025-06-02", ROWS - 1, 1)
    assert report.validation_id.startswith("2025-06-02-")
    assert [p.name for p in weekly.lake_dir.iterdir()] == ["date=2025-06-02"]
    lake = pd.read_parquet(storage.partition_dir(weekly.lake_dir, monday))
    start = pd.Timestamp(monday, tz="UTC")
    assert lake["event_timestamp"].between(start, start + pd.Timedelta(days=7), "left").all()
    assert lake["event_timestamp"].dt.dayofweek.nunique() == 7
    quarantined = pd.read_parquet(storage.partition_dir(weekly.quarantine_dir, monday))
    assert list(quarantined[FAILED_EXPECTATIONS]) == [
        "expect_column_values_to_be_between(event_timestamp)"
    ]
    # The weekly suite is its own, and a week of rows outside the budget rejects the batch.
    assert report.failed_expectations and ingestion_report.report_path(weekly, thursday).exists()
    frame.loc[: ROWS // 10, "event_timestamp"] = pd.Timestamp("2025-05-30T08:00:00Z")
    write_landing_file(frame, landing, weekly.spec.timestamp)
    with pytest.raises(BatchRejected, match="customer_activity_weekly batch 2025-06-02"):
        ingest_day(weekly, monday)


HOURLY = '{"churn": {"cadence": "hourly"}}'


def test_an_hourly_partition_lands_under_its_hour_and_keeps_to_it(settings):
    hourly = settings.replace(usecase_overrides=HOURLY)
    hour = dt.datetime(2025, 6, 2, 5)
    # A day's rows of the generator, moved into the hour.
    frame = generate_frame(settings.spec, DAY, ROWS)
    seconds = np.random.default_rng(3).integers(0, 3600, ROWS)
    frame["event_timestamp"] = pd.Timestamp(hour, tz="UTC") + pd.to_timedelta(seconds, unit="s")
    # A row of the next hour in this hour's file is a bad row: quarantined, not the batch.
    frame.loc[7, "event_timestamp"] = pd.Timestamp("2025-06-02T06:00:00Z")
    landing = storage.landing_file(hourly, dt.datetime(2025, 6, 2, 5, 40), "parquet")
    assert landing.parent.name == "date=2025-06-02T05"
    write_landing_file(frame, landing, hourly.spec.timestamp)
    report = ingest_day(hourly, hour)
    assert (report.day, report.rows_valid, report.rows_quarantined) == (
        "2025-06-02T05",
        ROWS - 1,
        1,
    )
    assert report.validation_id.startswith("2025-06-02T05-")
    assert [p.name for p in hourly.lake_dir.iterdir()] == ["date=2025-06-02T05"]
    assert storage.partition_days(hourly.lake_dir) == [hour]
    lake = pd.read_parquet(storage.partition_dir(hourly.lake_dir, hour))
    start = pd.Timestamp(hour, tz="UTC")
    assert lake["event_timestamp"].between(start, start + pd.Timedelta(hours=1), "left").all()
    quarantined = pd.read_parquet(storage.partition_dir(hourly.quarantine_dir, hour))
    assert list(quarantined[FAILED_EXPECTATIONS]) == [
        "expect_column_values_to_be_between(event_timestamp)"
    ]
    assert ingestion_report.report_path(hourly, hour).name == "date=2025-06-02T05.json"
    exported = _gauges(ingestion_report.prometheus_textfile(hourly))
    started = exported[_key("mlops_ingestion_day_timestamp_seconds", **CHURN)]
    assert started == dt.datetime(2025, 6, 2, 5, tzinfo=dt.UTC).timestamp()
    # The lake reads as a Hive-partitioned dataset, the hour as its key.
    dataset = pads.dataset(hourly.lake_dir, format="parquet", partitioning="hive")
    assert set(dataset.to_table(columns=["date"]).column("date").to_pylist()) == {"2025-06-02T05"}
    # Rows of the hour before, over the bad-row budget, reject the hour's batch.
    frame.loc[: ROWS // 10, "event_timestamp"] = pd.Timestamp("2025-06-02T04:59:59Z")
    write_landing_file(frame, landing, hourly.spec.timestamp)
    with pytest.raises(BatchRejected, match="customer_activity_hourly batch 2025-06-02T05"):
        ingest_day(hourly, hour)
    assert not storage.partition_dir(hourly.lake_dir, hour).exists()


def test_text_far_down_a_number_column_rejects_the_batch_naming_the_column(settings, monkeypatch):
    landed = generate_day(settings, DAY, ROWS)
    lines = landed.path.read_text().splitlines()
    header = lines[0].split(",")
    last = lines[-1].split(",")
    last[header.index("tenure_months")] = "twelve"
    lines[-1] = ",".join(last)
    landed.path.write_text("\n".join(lines) + "\n")
    # Blocks far smaller than the file: the stray value is many blocks past the first.
    monkeypatch.setattr(landing, "CSV_BLOCK_BYTES", 4096)
    with pytest.raises(BatchRejected, match="batch-level expectations.*tenure_months"):
        ingest_day(settings, DAY)


def test_store_demand_faults_are_caught_like_churns(settings):
    demand = settings.for_usecase("store_demand")
    generate_day(demand, DAY, ROWS, scenario="out_of_range")
    report = ingest_day(demand, DAY)
    assert (report.status, report.rows_quarantined) == ("validated", 2)
    quarantined = pd.read_parquet(storage.partition_dir(demand.quarantine_dir, DAY))
    assert sorted(quarantined[FAILED_EXPECTATIONS]) == [
        "expect_column_values_to_be_between(floor_area_sqm)",
        "expect_column_values_to_be_in_set(store_format)",
    ]
    generate_day(demand, DAY, ROWS, scenario="null_burst")
    with pytest.raises(BatchRejected, match=r"20 of 400 rows.*not_be_null\(price_index\)"):
        ingest_day(demand, DAY)
    generate_day(demand, DAY, ROWS, scenario="schema_break", schema_break="retyped")
    with pytest.raises(BatchRejected, match=r"expect_column_type_to_be\(opened_years_ago\)"):
        ingest_day(demand, DAY)
