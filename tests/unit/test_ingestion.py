"""Ingestion without Airflow: split, thresholds, idempotence, never touching the raw file."""

from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd
import pytest

from mlops_pipeline.config import Settings
from mlops_pipeline.data import contract, ingestion, storage
from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import (
    FAILED_EXPECTATIONS,
    BatchRejected,
    LandingFileMissing,
    ingest_day,
)
from tests.conftest import prometheus_samples

DAY = dt.date(2025, 6, 2)
ROWS = 400


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_landing_file_is_reported(settings):
    with pytest.raises(LandingFileMissing, match="2025-06-02"):
        ingest_day(settings, DAY)


def test_bad_rows_under_budget_are_quarantined_with_reasons(settings):
    landed = generate_day(settings.landing_dir, DAY, ROWS, scenario="out_of_range")
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
    assert set(lake["plan"]) <= set(contract.PLANS)
    assert _sha(landed.path) == raw_before


def test_threshold_is_configurable(mlops_home):
    lenient = Settings(home=mlops_home, min_batch_rows=50, max_bad_row_fraction=0.10)
    generate_day(lenient.landing_dir, DAY, ROWS, scenario="null_burst")
    report = ingest_day(lenient, DAY)
    assert report.status == "validated" and report.rows_quarantined == 20

    strict = Settings(home=mlops_home, min_batch_rows=50, max_bad_row_fraction=0.01)
    with pytest.raises(BatchRejected, match=r"20 of 400 rows \(5\.00%\).*not_be_null"):
        ingest_day(strict, DAY)
    # The rejected day leaves no validated copy behind, and keeps its quarantined rows.
    assert not storage.partition_dir(strict.lake_dir, DAY).exists()
    assert len(pd.read_parquet(storage.partition_dir(strict.quarantine_dir, DAY))) == 20


def test_rerun_gives_the_same_partition_and_validation_id(settings):
    generate_day(settings.landing_dir, DAY, ROWS, scenario="duplicates")
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
    generate_day(settings.landing_dir, DAY, ROWS, scenario="schema_break")
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


def test_the_newest_days_quarantine_rate_is_exported_for_prometheus(settings):
    from mlops_pipeline.data.ingestion import PROMETHEUS_FILE

    newest = DAY + dt.timedelta(days=1)
    generate_day(settings.landing_dir, newest, ROWS, scenario="out_of_range")
    ingest_day(settings, newest)
    textfile = settings.reports_dir / "ingestion" / PROMETHEUS_FILE
    exported = _gauges(textfile)
    assert exported["mlops_quarantine_rate"] == 2 / ROWS
    assert exported["mlops_ingestion_rows[('kind', 'quarantined')]"] == 2
    assert exported["mlops_ingestion_batch_passed"] == 1
    # Re-running an older (clean) day keeps the newest day's figures.
    generate_day(settings.landing_dir, DAY, ROWS)
    ingest_day(settings, DAY)
    assert _gauges(textfile)["mlops_quarantine_rate"] == 2 / ROWS


def test_text_far_down_a_number_column_rejects_the_batch_naming_the_column(settings, monkeypatch):
    landed = generate_day(settings.landing_dir, DAY, ROWS)
    lines = landed.path.read_text().splitlines()
    header = lines[0].split(",")
    last = lines[-1].split(",")
    last[header.index("tenure_months")] = "twelve"
    lines[-1] = ",".join(last)
    landed.path.write_text("\n".join(lines) + "\n")
    # Blocks far smaller than the file: the stray value is many blocks past the first.
    monkeypatch.setattr(ingestion, "CSV_BLOCK_BYTES", 4096)
    with pytest.raises(BatchRejected, match="batch-level expectations.*tenure_months"):
        ingest_day(settings, DAY)
