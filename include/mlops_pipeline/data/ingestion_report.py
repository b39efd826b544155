"""What ingesting a partition reports: the report itself (JSON, one per partition) and the
newest partition's figures as the dataset's Prometheus textfile.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.usecases.vocabulary import partition_from_key, partition_key


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


def report_path(settings: Settings, day: dt.date) -> Path:
    """The ingestion report of the partition holding ``day``."""
    partition = settings.spec.cadence.partition_of(day)
    return _reports_folder(settings) / f"date={partition_key(partition)}.json"


def prometheus_textfile(settings: Settings) -> Path:
    """The dataset's Prometheus textfile, ``reports/ingestion/<dataset>.prom``: one file per
    dataset in the one folder node exporter's textfile collector reads."""
    return settings.reports_dir / "ingestion" / f"{settings.spec.dataset}.prom"


def _reports_folder(settings: Settings) -> Path:
    return settings.reports_dir / "ingestion" / settings.spec.dataset


def write_report(settings: Settings, day: dt.date, report: IngestionReport) -> None:
    """Write the partition's report, then refresh the dataset's textfile from the newest
    report."""
    storage.write_json(report_path(settings, day), report.to_dict())
    write_prometheus_textfile(settings)


def write_prometheus_textfile(settings: Settings) -> Path:
    """The newest ingested partition's figures (quarantine rate, rows, whether the batch passed)
    as the dataset's Prometheus textfile for node exporter's textfile collector, every sample
    labelled with the ``dataset`` and the ``model`` it feeds. Written from the newest
    partition's report, so re-running an older partition never exports stale figures."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    spec = settings.spec
    newest = max(_reports_folder(settings).glob("date=*.json"))  # keys sort in time order
    report = json.loads(newest.read_text())
    metrics = CollectorRegistry()
    names = ["dataset", "model"]
    labels = {"dataset": spec.dataset, "model": spec.model_name}
    start = spec.cadence.start(partition_from_key(report["day"]))
    Gauge(
        "mlops_ingestion_day_timestamp_seconds",
        "Start of the ingested partition (UTC)",
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
