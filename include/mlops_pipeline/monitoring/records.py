"""The night records: what each nightly check found and decided, one JSON summary per checked
partition under ``reports/drift/<use case>/night=YYYY-MM-DD/`` (beside its Evidently HTML
report). Keyed by the partition, so re-running a night replaces its record, and the k-of-n
logic reads the same records whatever order nights ran in.

Typed at the boundaries: written with ``model_dump(mode="json")``, read with
``model_validate``. The JSON keys are those of the records written before they were typed, so
older records still read; a night without a champion has no measurements.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, Field

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.monitoring.policy import Decision, RetrainPolicy
from mlops_pipeline.usecases.vocabulary import PartitionField, partition_from_key, partition_key

SUMMARY = "summary.json"
REPORT = "report.html"
NO_CHAMPION: Final = "no champion"
CHECKED: Final = "checked"


class ColumnDrift(BaseModel):
    score: float
    method: str | None = None
    threshold: float | None = None
    drifted: bool = False


class DriftSummary(BaseModel):
    """Data drift of the features (``drift.DriftResult`` without the prediction)."""

    drift_share: float
    drifted_columns: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnDrift] = Field(default_factory=dict)
    rows_current: int | None = None
    rows_reference: int | None = None


class PredictionDrift(BaseModel):
    """Drift of the champion's score, and where tonight's scores came from."""

    score: float | None = None
    method: str | None = None
    threshold: float | None = None
    drifted: bool | None = None
    source: str  # "prediction log" or "batch scoring"
    rows: int
    mean_current: float
    mean_reference: float


class Performance(BaseModel):
    """The champion's primary metric on the partition's labelled rows (``drift.performance``);
    ``drop`` is how much worse than at test time, None when it cannot be measured."""

    metric: str
    drop: float | None = None
    rows: int | None = None
    higher_is_better: bool | None = None
    value: float | None = None
    test_value: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    test_metrics: dict[str, float] = Field(default_factory=dict)


class ChampionRef(BaseModel):
    version: str
    run_id: str | None = None


class NightRecord(BaseModel):
    night: PartitionField
    status: Literal["checked", "no champion"]
    rows: int
    decision: Decision
    usecase: str | None = None
    model_name: str | None = None
    checked_at: str | None = None
    airflow: dict[str, str] = Field(default_factory=dict)
    policy: RetrainPolicy | None = None
    # Set on a checked night only.
    champion: ChampionRef | None = None
    drift: DriftSummary | None = None
    prediction: PredictionDrift | None = None
    performance: Performance | None = None
    report_html: str | None = None
    mlflow_run_id: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)


class NightOutcome(BaseModel):
    """What the check task hands on through XCom, and the retrain request's asset event."""

    date: PartitionField
    status: str
    rows: int
    champion_version: str | None
    drift_share: float | None
    drifted_columns: list[str] | None
    performance: Performance | None
    retrain: bool
    reasons: list[str]
    nights_flagged: list[PartitionField]
    report: str | None

    @classmethod
    def of(cls, record: NightRecord) -> NightOutcome:
        return cls(
            date=record.night,
            status=record.status,
            rows=record.rows,
            champion_version=record.champion.version if record.champion else None,
            drift_share=record.drift.drift_share if record.drift else None,
            drifted_columns=record.drift.drifted_columns if record.drift else None,
            performance=record.performance,
            retrain=record.decision.retrain,
            reasons=record.decision.reasons,
            nights_flagged=record.decision.nights_flagged,
            report=record.report_html,
        )

    def retrain_event(self) -> dict[str, Any]:
        """The ``retrain_requested`` event's extra: the night as the training window's end and
        the reasons as the trigger reason (``training.planning.trigger_from_events``)."""
        extra = self.model_dump(
            mode="json",
            include={
                "date",
                "drift_share",
                "drifted_columns",
                "performance",
                "nights_flagged",
                "champion_version",
                "report",
            },
        )
        return {**extra, "reason": "; ".join(self.reasons)}


def night_dir(settings: Settings, night: dt.date) -> Path:
    return settings.drift_reports_dir / f"night={partition_key(night)}"


def write_record(settings: Settings, record: NightRecord) -> Path:
    """Write ``record`` as its night's summary (replacing an earlier run's)."""
    path = night_dir(settings, record.night) / SUMMARY
    storage.write_json(path, record.model_dump(mode="json"))
    return path


def read_record(settings: Settings, night: dt.date) -> NightRecord | None:
    path = night_dir(settings, night) / SUMMARY
    if not path.exists():
        return None
    return NightRecord.model_validate(json.loads(path.read_text()))


def night_record_json(settings: Settings, night: dt.date) -> dict[str, Any] | None:
    """``read_record`` as JSON, for the reports that render it."""
    record = read_record(settings, night)
    return None if record is None else record.model_dump(mode="json")


def earlier_decisions(
    settings: Settings, night: dt.date, policy: RetrainPolicy
) -> dict[dt.date, Decision]:
    """The decisions of the partitions before ``night`` that the policy looks back on."""
    decisions = {}
    for partition in policy.partitions_back(night, policy.lookback_partitions + 1)[1:]:
        record = read_record(settings, partition)
        if record is not None:
            decisions[partition] = record.decision
    return decisions


def recorded_nights(settings: Settings) -> list[dt.date]:
    root = settings.drift_reports_dir
    if not root.exists():
        return []
    return sorted(
        partition_from_key(p.parent.name.removeprefix("night="))
        for p in root.glob(f"night=*/{SUMMARY}")
    )


def latest_record(settings: Settings) -> NightRecord | None:
    nights = recorded_nights(settings)
    return read_record(settings, nights[-1]) if nights else None


def latest_nights(settings: Settings, limit: int = 7) -> list[dict[str, Any]]:
    """The newest night records, newest first, reduced for ``status`` (JSON)."""
    rows = []
    for night in reversed(recorded_nights(settings)[-limit:]):
        record = read_record(settings, night)
        if record is None:  # removed since listed
            continue
        drift, performance = record.drift, record.performance
        rows.append(
            {
                "night": partition_key(night),
                "status": record.status,
                "champion_version": record.champion.version if record.champion else None,
                "rows": record.rows,
                "drift_share": drift.drift_share if drift else None,
                "drifted_columns": drift.drifted_columns if drift else None,
                "performance_metric": performance.metric if performance else None,
                "performance_drop": performance.drop if performance else None,
                "retrain": record.decision.retrain,
                "reasons": record.decision.reasons,
            }
        )
    return rows
