"""Ingest one partition of a use case's dataset: read the landed file, validate it against the
declared contract, write clean rows to the lake and failing rows to quarantine.

A partition is one period of the use case's cadence (an hour, a day, or a week named by its
Monday);
its rows must be timestamped inside ``[start, start + cadence.length)``. A row outside is a
row-level failure: it is quarantined, and the batch is rejected only when such rows (with the
other failing rows) exceed the bad-row budget.

A landing partition (``<landing_dir>/date=<key>/``) holds one data file, ``<dataset>.csv`` or
``<dataset>.parquet``; it has landed once an entry of that name is there, which is what the
landing sensor waits for. Entries whose names start with ``.`` or ``_`` are scratch and
ignored: hidden files (``.DS_Store``, an upload written under a hidden name and renamed when
complete, as the demo's generator does) and markers such as ``_SUCCESS``. Anything else beside
the data file (a second CSV of the day, a Parquet beside the CSV, ``<dataset>.csv.part``), or
a data file that is not a regular file (a directory under its name, a dangling link), rejects
the batch naming every entry; an upload must therefore not write a visible temporary name
beside a landed file. A partition without a ``<dataset>.csv`` or ``<dataset>.parquet`` entry
has not landed, whatever else it holds: ``LandingFileMissing`` (the sensor keeps waiting), whose
message lists the entries that are not scratch.

The landed file is only ever read. The validated and quarantine partitions are replaced whole,
so re-running a partition gives the same state, and its stored validation result is the same
bytes (see ``validation``). A batch that cannot be trusted raises ``BatchRejected`` (a
``PermanentFailure``: retrying cannot help) after its reports are written, and a rejected
partition leaves no older validated copy in the lake.

This module judges the batch; reading the landed file is ``landing``'s, writing the lake and
quarantine partitions ``partition_write``'s, the report and its textfile ``ingestion_report``'s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from typing import NoReturn

import pyarrow as pa

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.data.conform import conform_types, unparsable_values
from mlops_pipeline.data.expectation_outcomes import ExpectationOutcome, failure_mask
from mlops_pipeline.data.ingestion_report import IngestionReport, write_report
from mlops_pipeline.data.landing import (
    describe_entry,
    file_sha256,
    layout_fingerprint,
    layout_problem,
    read_landing_file,
)
from mlops_pipeline.data.partition_write import (
    write_quarantine,
    write_rejection_verdict,
    write_validated,
)
from mlops_pipeline.data.validation import SUITE_VERSION, GxProject, suite_name
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.platform.relocate import follow_move
from mlops_pipeline.usecases.spec import Cadence
from mlops_pipeline.usecases.vocabulary import partition_key


class BatchRejected(PermanentFailure):
    """The partition's batch cannot be used; ``report`` says why. Deterministic: do not
    retry."""

    def __init__(self, report: IngestionReport) -> None:
        super().__init__(report.message)
        self.report = report


class LandingFileMissing(PermanentFailure, FileNotFoundError):
    """Nothing landed for the partition. Waiting for the file is the landing sensor's job; once
    ingestion runs, retrying it cannot make the file appear."""


def partition_interval(cadence: Cadence, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of the partition holding ``day`` (UTC)."""
    start = cadence.start(day)
    return start, start + cadence.length


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
    # A moved MLOPS_HOME: the records this partition's reports sit beside name the new home.
    follow_move(settings)
    spec = settings.spec
    day = spec.cadence.partition_of(day)
    landing = storage.find_landing_file(settings, day)
    entries = storage.landing_entries(settings, day)
    if landing is None:
        found = f"; it holds {', '.join(map(describe_entry, entries))}" if entries else ""
        raise LandingFileMissing(
            f"no landing file of {spec.dataset} for {day} under "
            f"{storage.partition_dir(settings.landing_dir, day)} "
            f"({' or '.join(f'{spec.dataset}.{f}' for f in storage.LANDING_FORMATS)}){found}"
        )
    layout = layout_problem(landing, entries)
    layout = _printable(layout) if layout else None
    sha = None if layout else file_sha256(landing)
    # Content-addressed: the same file checked by the same suite version under the same rules
    # and contract always gets the same id, so a re-run reproduces the same lineage.
    rules = _rules_fingerprint(settings)
    content = sha or layout_fingerprint(entries)
    validation_id = f"{partition_key(day)}-{content[:12]}-v{SUITE_VERSION}-{rules}"
    report = IngestionReport(
        dataset=spec.dataset,
        day=partition_key(day),
        status="rejected",
        message="",
        validation_id=validation_id,
        landing_file=str(landing),
        landing_sha256=sha,
        timings=timings,
    )
    timings["hash"] = time.perf_counter() - started
    if layout:
        _reject(
            settings,
            day,
            report,
            f"the landing partition is not one data file: {layout}",
            [ExpectationOutcome("partition_holds_one_data_file", "batch", False, observed=layout)],
        )

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
    unparsable = unparsable_values(spec, table)
    frame = conform_types(spec, table)
    del table
    pa.default_memory_pool().release_unused()  # the table's pages: validation is all pandas
    interval_start, interval_end = partition_interval(spec.cadence, day)
    outcome = project.validate(frame, validation_id, interval_start, interval_end)
    timings["validate"] = time.perf_counter() - mark
    result_path = settings.validations_dir / f"date={partition_key(day)}" / f"{validation_id}.json"
    storage.write_json(result_path, outcome.result_json)
    report.validation_result = str(result_path)

    def render_data_docs() -> None:
        # After the verdict: the pages show it, not the suite's pass/fail.
        if settings.build_data_docs:
            mark = time.perf_counter()
            docs = project.render_data_docs(outcome, report.status, report.message)
            report.data_docs = str(docs)
            timings["data_docs"] = time.perf_counter() - mark

    failed_batch = [_with_offence(e, unparsable) for e in outcome.failed_batch_expectations]
    if frame.empty:
        # Even with a zero-row lower bound configured, an empty batch is never a valid one.
        _reject(
            settings,
            day,
            report,
            "batch is empty: the landing file holds no rows",
            failed_batch
            or [ExpectationOutcome("batch_is_not_empty", "batch", False, observed="0")],
            before_writing=render_data_docs,
        )
    if failed_batch:
        _reject(
            settings,
            day,
            report,
            "batch failed its batch-level expectations: " + _names(failed_batch),
            failed_batch,
            before_writing=render_data_docs,
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
            quarantine=lambda: write_quarantine(
                settings, day, frame, bad, outcome.row_failures, report
            ),
            before_writing=render_data_docs,
        )
    report.status = "validated"
    report.message = (
        f"{report.rows_valid} rows validated, {report.rows_quarantined} quarantined"
        + (f" ({_names(outcome.failed_row_expectations)})" if report.rows_quarantined else "")
    )
    write_quarantine(settings, day, frame, bad, outcome.row_failures, report)
    write_validated(settings, day, frame.loc[~bad] if report.rows_quarantined else frame, report)
    timings["split_write"] = time.perf_counter() - mark
    render_data_docs()
    timings["total"] = time.perf_counter() - started
    write_report(settings, day, report)
    return report


def _with_offence(outcome: ExpectationOutcome, unparsable: dict[str, str]) -> ExpectationOutcome:
    """A failed type expectation, with the column's first offending row and value."""
    for column, offence in unparsable.items():
        if outcome.name == f"expect_column_type_to_be({column})":
            observed = f"{outcome.observed}; {offence}" if outcome.observed else offence
            return dataclasses.replace(outcome, observed=observed)
    return outcome


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
        "duplicates": spec.entity.duplicates.value,
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
    before_writing: Callable[[], None] | None = None,
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
        write_rejection_verdict(settings, day, report)
    if before_writing is not None:
        before_writing()  # what records the verdict elsewhere (Data Docs)
    write_report(settings, day, report)
    raise BatchRejected(report)


def contract_label(settings: Settings, day: dt.date) -> str:
    return f"{suite_name(settings.spec)} batch {partition_key(day)}"
