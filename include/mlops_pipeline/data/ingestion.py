"""Ingest one partition of a use case's dataset: read the landed file, validate it against the
declared contract, write clean rows to the lake and failing rows to quarantine.

A partition is one period of the use case's cadence (a day, or a week named by its Monday);
its rows must be timestamped inside ``[start, start + cadence.length)``. A row outside is a
row-level failure: it is quarantined, and the batch is rejected only when such rows (with the
other failing rows) exceed the bad-row budget.

The landed file is only ever read. The validated and quarantine partitions are replaced whole,
so re-running a partition gives the same state. A batch that cannot be trusted raises
``BatchRejected`` (a ``PermanentFailure``: retrying cannot help) after its reports are written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.data.contract import Kind
from mlops_pipeline.data.validation import (
    SUITE_VERSION,
    ExpectationOutcome,
    GxProject,
    conform_types,
    failure_mask,
    suite_name,
)
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.usecases.spec import Cadence, UseCaseSpec

log = logging.getLogger(__name__)

FAILED_EXPECTATIONS = "_failed_expectations"
VALIDATION_ID = "_validation_id"
DATA_FILE = "part-0.parquet"
CSV_BLOCK_BYTES = 8 << 20
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


class BatchRejected(PermanentFailure):
    """The partition's batch cannot be used; ``report`` says why. Deterministic: do not
    retry."""

    def __init__(self, report: IngestionReport) -> None:
        super().__init__(report.message)
        self.report = report


class LandingFileMissing(PermanentFailure, FileNotFoundError):
    """Nothing landed for the partition. Waiting for the file is the landing sensor's job; once
    ingestion runs, retrying it cannot make the file appear."""


@dataclass
class IngestionReport:
    day: str  # the partition's first day
    status: str  # "validated" or "rejected"
    message: str
    validation_id: str | None = None
    landing_file: str | None = None
    landing_sha256: str | None = None
    rows_landed: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    bad_row_fraction: float = 0.0
    failed_expectations: list[dict[str, Any]] = field(default_factory=list)
    validated_partition: str | None = None
    quarantine_partition: str | None = None
    validation_result: str | None = None
    data_docs: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    dataset: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def asset_extra(self) -> dict[str, Any]:
        """What downstream consumers need from the asset event: small and JSON-safe."""
        return {
            "date": self.day,
            "dataset": self.dataset,
            "rows": self.rows_valid,
            "quarantined": self.rows_quarantined,
            "validation_id": self.validation_id,
            "partition": self.validated_partition,
        }


def partition_interval(cadence: Cadence, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of the partition holding ``day`` (UTC)."""
    start = dt.datetime.combine(cadence.partition_of(day), dt.time(), tzinfo=dt.UTC)
    return start, start + cadence.length


def report_path(settings: Settings, day: dt.date) -> Path:
    """The ingestion report of the partition holding ``day``."""
    partition = settings.spec.cadence.partition_of(day)
    return _reports_folder(settings) / f"date={partition.isoformat()}.json"


def prometheus_textfile(settings: Settings) -> Path:
    """The dataset's Prometheus textfile, ``reports/ingestion/<dataset>.prom``: one file per
    dataset in the one folder node exporter's textfile collector reads."""
    return settings.reports_dir / "ingestion" / f"{settings.spec.dataset}.prom"


def _reports_folder(settings: Settings) -> Path:
    return settings.reports_dir / "ingestion" / settings.spec.dataset


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(8 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_landing_file(path: Path) -> pa.Table:
    """Read the landed file as it is; types are judged by the suite, not forced here.

    CSV blocks are parsed on all cores (pyarrow's threaded reader): about twice as fast as its
    one-block-at-a-time streaming reader, for a higher parse peak (README: ingestion). Each
    column's type is unified over the whole file,
    so a stray value far down (text in a number column) turns the column to text and the suite
    rejects the batch naming the column, rather than the file failing to parse.
    """
    import pyarrow.csv as pacsv

    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(
                # Category text arrives dictionary-encoded: cheaper to hold and to validate.
                auto_dict_encode=True,
                timestamp_parsers=[pacsv.ISO8601],
                # An empty cell of a category column is a null, as it is in a number column.
                strings_can_be_null=True,
            ),
        )
    # Arrow's allocator keeps the pages the parse freed (the raw blocks, ~2x the table) for
    # reuse; nothing after the read needs them, and they would sit under every later peak.
    pa.default_memory_pool().release_unused()
    return table


def ingest_day(
    settings: Settings,
    day: dt.date,
    run_label: str = "manual",
) -> IngestionReport:
    """Validate the landed file of the partition holding ``day`` (of ``settings.spec``'s
    cadence) and split it into the lake and quarantine.

    Raises ``LandingFileMissing`` when nothing landed, ``BatchRejected`` when the batch is
    unusable (unreadable, empty, schema broken, too many bad rows).
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    spec = settings.spec
    day = spec.cadence.partition_of(day)
    landing = storage.find_landing_file(settings, day)
    if landing is None:
        raise LandingFileMissing(
            f"no landing file of {spec.dataset} for {day} under "
            f"{storage.partition_dir(settings.landing_dir, day)}"
        )
    sha = file_sha256(landing)
    # Content-addressed: the same file checked by the same suite version under the same rules
    # and contract always gets the same id, so a re-run reproduces the same lineage.
    validation_id = f"{day.isoformat()}-{sha[:12]}-v{SUITE_VERSION}-{_rules_fingerprint(settings)}"
    report = IngestionReport(
        dataset=spec.dataset,
        day=day.isoformat(),
        status="rejected",
        message="",
        validation_id=validation_id,
        landing_file=str(landing),
        landing_sha256=sha,
        timings=timings,
    )
    timings["hash"] = time.perf_counter() - started

    mark = time.perf_counter()
    try:
        table = read_landing_file(landing)
    except Exception as exc:  # pyarrow raises several types for a broken file; all mean the same
        reason = _printable(f"{type(exc).__name__}: {exc}")
        _reject(
            settings,
            day,
            report,
            f"landing file is unreadable: {reason}",
            [ExpectationOutcome("file_is_readable", "batch", False, observed=reason)],
        )
    timings["read"] = time.perf_counter() - mark
    report.rows_landed = table.num_rows

    mark = time.perf_counter()
    project = GxProject(settings)
    timings["gx_context"] = time.perf_counter() - mark

    mark = time.perf_counter()
    frame = conform_types(spec, table)
    del table
    pa.default_memory_pool().release_unused()  # the table's pages: validation is all pandas
    interval_start, interval_end = partition_interval(spec.cadence, day)
    outcome = project.validate(frame, validation_id, interval_start, interval_end)
    timings["validate"] = time.perf_counter() - mark
    result_path = settings.validations_dir / f"date={day.isoformat()}" / f"{validation_id}.json"
    storage.write_json(result_path, outcome.result_json)
    report.validation_result = str(result_path)
    if settings.build_data_docs:
        mark = time.perf_counter()
        report.data_docs = str(project.render_data_docs(outcome))
        timings["data_docs"] = time.perf_counter() - mark

    failed_batch = outcome.failed_batch_expectations
    if frame.empty:
        # Even with a zero-row lower bound configured, an empty batch is never a valid one.
        _reject(
            settings,
            day,
            report,
            "batch is empty: the landing file holds no rows",
            failed_batch
            or [ExpectationOutcome("batch_is_not_empty", "batch", False, observed="0")],
        )
    if failed_batch:
        _reject(
            settings,
            day,
            report,
            "batch failed its batch-level expectations: " + _names(failed_batch),
            failed_batch,
        )

    mark = time.perf_counter()
    bad = failure_mask(len(frame), outcome.row_failures)
    report.rows_quarantined = int(bad.sum())
    report.rows_valid = len(frame) - report.rows_quarantined
    report.bad_row_fraction = report.rows_quarantined / len(frame)
    report.failed_expectations = [e.to_dict() for e in outcome.failed_row_expectations]
    if report.bad_row_fraction > settings.max_bad_row_fraction:
        _reject(
            settings,
            day,
            report,
            f"{report.rows_quarantined} of {len(frame)} rows "
            f"({report.bad_row_fraction:.2%}) failed row-level expectations, over the "
            f"{settings.max_bad_row_fraction:.2%} budget: "
            + _names(outcome.failed_row_expectations),
            outcome.failed_row_expectations,
            quarantine=lambda: _write_quarantine(
                settings, day, frame, bad, outcome.row_failures, report
            ),
        )
    report.status = "validated"
    report.message = (
        f"{report.rows_valid} rows validated, {report.rows_quarantined} quarantined"
        + (f" ({_names(outcome.failed_row_expectations)})" if report.rows_quarantined else "")
    )
    _write_quarantine(settings, day, frame, bad, outcome.row_failures, report)
    _write_validated(settings, day, frame.loc[~bad] if report.rows_quarantined else frame, report)
    timings["split_write"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    _write_report(settings, day, report)
    return report


def _printable(text: str, limit: int = 300) -> str:
    """Error text from a corrupt file can carry its binary garbage; keep the message readable."""
    clean = text.encode("ascii", "backslashreplace").decode("ascii")
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _rules_fingerprint(settings: Settings) -> str:
    """The batch rules and the declared contract the suite is built from."""
    spec = settings.spec
    contract = {
        "columns": {name: col.model_dump(mode="json") for name, col in spec.columns.items()},
        "key": spec.entity.key,
        "timestamp": spec.timestamp,
        "cadence": spec.cadence.value,
    }
    rules = (
        f"{settings.min_batch_rows}:{settings.max_batch_rows}:{settings.max_bad_row_fraction}:"
        + json.dumps(contract, sort_keys=True)
    )
    return hashlib.sha256(rules.encode()).hexdigest()[:6]


def _names(outcomes: list[ExpectationOutcome]) -> str:
    parts = []
    for outcome in outcomes:
        detail = (
            f"{outcome.unexpected_count} rows"
            if outcome.unexpected_count is not None
            else (f"observed {outcome.observed}" if outcome.observed else "")
        )
        parts.append(f"{outcome.name} [{detail}]" if detail else outcome.name)
    return "; ".join(parts)


def _reject(
    settings: Settings,
    day: dt.date,
    report: IngestionReport,
    message: str,
    failed: list[ExpectationOutcome],
    quarantine: Callable[[], None] | None = None,
) -> NoReturn:
    """Record the rejection everywhere, then raise. ``quarantine`` writes the failing rows when
    the batch was judged row by row; otherwise the quarantine partition holds only the verdict
    (the whole batch is the problem, and the untouched landing file is its record)."""
    report.status = "rejected"
    report.message = f"{contract_label(settings, day)} rejected: {message}"
    report.failed_expectations = [e.to_dict() for e in failed]
    report.rows_valid = 0
    # A rejected day must not leave an older validated copy for training to find.
    storage.remove_partition(settings.lake_dir, day)
    report.validated_partition = None
    if quarantine is not None:
        quarantine()
    else:
        storage.replace_partition(
            settings.quarantine_dir, day, lambda folder: _manifest(settings, folder, report)
        )
        report.quarantine_partition = str(storage.partition_dir(settings.quarantine_dir, day))
    _write_report(settings, day, report)
    raise BatchRejected(report)


def contract_label(settings: Settings, day: dt.date) -> str:
    return f"{suite_name(settings.spec)} batch {day.isoformat()}"


def _write_quarantine(
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
        _manifest(settings, folder, report)

    report.quarantine_partition = str(
        storage.replace_partition(settings.quarantine_dir, day, write)
    )


def _write_validated(
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
        _manifest(settings, folder, report, content_sha256=file_sha256(path))

    storage.replace_partition(settings.lake_dir, day, write)


def _manifest(
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


def _write_report(settings: Settings, day: dt.date, report: IngestionReport) -> None:
    storage.write_json(report_path(settings, day), report.to_dict())
    write_prometheus_textfile(settings)


def write_prometheus_textfile(settings: Settings) -> Path:
    """The newest ingested partition's figures (quarantine rate, rows, whether the batch passed)
    as the dataset's Prometheus textfile for node exporter's textfile collector, every sample
    labelled with the ``dataset`` and the ``model`` it feeds. Written from the newest
    partition's report, so re-running an older partition never exports stale figures."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    spec = settings.spec
    newest = max(_reports_folder(settings).glob("date=*.json"))  # ISO dates sort in time order
    report = json.loads(newest.read_text())
    metrics = CollectorRegistry()
    names = ["dataset", "model"]
    labels = {"dataset": spec.dataset, "model": spec.model_name}
    start = dt.datetime.combine(dt.date.fromisoformat(report["day"]), dt.time(), tzinfo=dt.UTC)
    Gauge(
        "mlops_ingestion_day_timestamp_seconds",
        "Start of the ingested partition (UTC midnight of its first day)",
        names,
        registry=metrics,
    ).labels(**labels).set(start.timestamp())
    landed = report["rows_landed"]
    Gauge(
        "mlops_quarantine_rate",
        "Quarantined share of the partition's landed rows",
        names,
        registry=metrics,
    ).labels(**labels).set(report["rows_quarantined"] / landed if landed else 0.0)
    rows = Gauge(
        "mlops_ingestion_rows", "Rows of the partition's batch", [*names, "kind"], registry=metrics
    )
    for kind in ("landed", "valid", "quarantined"):
        rows.labels(**labels, kind=kind).set(report[f"rows_{kind}"])
    Gauge(
        "mlops_ingestion_batch_passed",
        "1 when the partition's batch was validated",
        names,
        registry=metrics,
    ).labels(**labels).set(1 if report["status"] == "validated" else 0)
    path = prometheus_textfile(settings)
    write_to_textfile(str(path), metrics)  # writes a temporary file and renames it
    return path
