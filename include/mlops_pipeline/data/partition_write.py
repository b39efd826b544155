"""Write what ingestion splits a batch into: the validated partition of the lake (in the lake's
plain column types) and the quarantine partition (failing rows with their reasons, or only the
verdict when the whole batch was rejected), each replaced whole with its manifest.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.data.contract import Kind
from mlops_pipeline.data.ingestion_report import IngestionReport
from mlops_pipeline.data.landing import file_sha256
from mlops_pipeline.data.validation import SUITE_VERSION, suite_name
from mlops_pipeline.usecases.spec import UseCaseSpec

FAILED_EXPECTATIONS = "_failed_expectations"
VALIDATION_ID = "_validation_id"
DATA_FILE = "part-0.parquet"
# Rows converted to Arrow at a time when writing: bounds the extra memory a write needs.
WRITE_CHUNK_ROWS = 250_000

ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.CATEGORY: pa.string(),
    Kind.BOOL: pa.bool_(),
    Kind.TIMESTAMP: pa.timestamp("ns", tz="UTC"),
}


def lake_schema(spec: UseCaseSpec) -> pa.Schema:
    """The lake's schema: the contract's columns in plain types every reader (Feast, DuckDB,
    Evidently) understands."""
    return pa.schema([pa.field(name, ARROW_TYPES[col.kind]) for name, col in spec.columns.items()])


def write_quarantine(
    settings: Settings,
    day: dt.date,
    frame: pd.DataFrame,
    bad: np.ndarray,
    row_failures: dict[int, list[str]],
    report: IngestionReport,
) -> None:
    if not bad.any():
        storage.remove_partition(settings.quarantine_dir, day)
        report.quarantine_partition = None
        return
    rows = frame.loc[bad].copy()
    rows[FAILED_EXPECTATIONS] = ["; ".join(row_failures[int(i)]) for i in np.flatnonzero(bad)]
    rows[VALIDATION_ID] = report.validation_id

    def write(folder: Path) -> None:
        table = pa.Table.from_pandas(rows, preserve_index=False)
        pq.write_table(table, folder / DATA_FILE)
        write_manifest(settings, folder, report)

    report.quarantine_partition = str(
        storage.replace_partition(settings.quarantine_dir, day, write)
    )


def write_rejection_verdict(settings: Settings, day: dt.date, report: IngestionReport) -> None:
    """The quarantine partition of a batch rejected whole: its manifest only."""
    storage.replace_partition(
        settings.quarantine_dir, day, lambda folder: write_manifest(settings, folder, report)
    )
    report.quarantine_partition = str(storage.partition_dir(settings.quarantine_dir, day))


def write_validated(
    settings: Settings, day: dt.date, clean: pd.DataFrame, report: IngestionReport
) -> None:
    report.validated_partition = str(storage.partition_dir(settings.lake_dir, day))
    schema = lake_schema(settings.spec)

    def write(folder: Path) -> None:
        path = folder / DATA_FILE
        with pq.ParquetWriter(path, schema) as writer:
            for start in range(0, len(clean), WRITE_CHUNK_ROWS):
                chunk = clean.iloc[start : start + WRITE_CHUNK_ROWS]
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                writer.write_table(table.select(schema.names).cast(schema))
        write_manifest(settings, folder, report, content_sha256=file_sha256(path))

    storage.replace_partition(settings.lake_dir, day, write)


def write_manifest(
    settings: Settings,
    folder: Path,
    report: IngestionReport,
    content_sha256: str | None = None,
) -> None:
    storage.write_json(
        folder / storage.MANIFEST,
        {
            "date": report.day,
            "dataset": report.dataset,
            "status": report.status,
            "validation_id": report.validation_id,
            "suite": suite_name(settings.spec),
            "suite_version": SUITE_VERSION,
            "landing_file": report.landing_file,
            "landing_sha256": report.landing_sha256,
            "content_sha256": content_sha256,
            "rows_landed": report.rows_landed,
            "rows_valid": report.rows_valid,
            "rows_quarantined": report.rows_quarantined,
            "message": report.message,
            "failed_expectations": report.failed_expectations,
        },
    )
