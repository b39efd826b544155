"""The records of a deployment: what the gates measured (``Evaluation``) and what was decided
(``DecisionRecord``), typed as they cross XCom and land on disk, and their Markdown.

At a boundary a record is dumped with ``model_dump(mode="json")`` and read back with
``model_validate``; the JSON keys are those of the records written before they were typed, so
older files still read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from mlops_pipeline.deployment.fairness import AttributeFairness
from mlops_pipeline.deployment.gates import GateReport, Scores
from mlops_pipeline.usecases.vocabulary import partition_key


class ModelScore(BaseModel):
    """One version measured on the holdout."""

    version: str
    run_id: str
    threshold: float | None  # None for a regressor
    metrics: dict[str, float]
    # segment ("<column>=<value>") -> (rows, primary metric value)
    segments: dict[str, tuple[int, float]] = Field(default_factory=dict)
    p99_latency_ms: float = 0.0
    model_size_mb: float = 0.0
    signature_compatible: bool = True
    # protected attribute -> its fairness (``deployment.fairness.fairness_by_attribute``)
    fairness: dict[str, AttributeFairness] = Field(default_factory=dict)

    def gate_scores(self) -> Scores:
        return Scores(
            metrics=self.metrics,
            segments=self.segments,
            p99_latency_ms=self.p99_latency_ms,
            model_size_mb=self.model_size_mb,
            signature_compatible=self.signature_compatible,
            fairness=self.fairness,
        )


class HoldoutPartition(BaseModel):
    date: str
    validation_id: str | None = None
    content_sha256: str | None = None


class Holdout(BaseModel):
    window: str  # "<first day>..<last day>"
    rows: int
    partitions: list[HoldoutPartition] = Field(default_factory=list)

    @classmethod
    def of(
        cls, start: dt.date, end: dt.date, rows: int, partitions: list[dict[str, Any]]
    ) -> Holdout:
        """From the training set's window and lake manifests."""
        return cls(
            window=f"{partition_key(start)}..{partition_key(end)}",
            rows=rows,
            partitions=[HoldoutPartition.model_validate(p) for p in partitions],
        )


class GateCheck(BaseModel):
    name: str
    value: float | str | None
    threshold: float | str | None
    passed: bool
    detail: str = ""


class GateOutcome(BaseModel):
    """``GateReport`` as recorded; keys the gates add later are kept as they come."""

    model_config = ConfigDict(extra="allow")

    passed: bool
    first_model: bool
    checks: list[GateCheck]
    reasons: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, report: GateReport) -> GateOutcome:
        return cls.model_validate(report.to_dict())


class Evaluation(BaseModel):
    """Challenger and champion on the same holdout, and the gates' verdict."""

    model_name: str
    challenger: ModelScore
    champion: ModelScore | None
    holdout: Holdout
    gates: GateOutcome
    # The challenger beside the champion on real inputs (None: nothing to compare yet): the
    # newest scored partition (``scoring.shadow.ShadowComparison``) and the live shadow
    # (``serving.shadow.ShadowSummary``).
    shadow: dict[str, Any] | None = None
    live_shadow: dict[str, Any] | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def report_markdown(self) -> str:
        """What an approver reads in the Airflow UI before deciding."""
        awaiting = DecisionRecord(
            action="promote",
            outcome="awaiting decision",
            model_name=self.model_name,
            version=self.challenger.version,
            evaluation=self,
        )
        return decision_markdown(awaiting)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class DecisionRecord(BaseModel):
    """A promotion or rollback: who decided what, on which evidence, and the aliases after."""

    action: str  # "promote" or "rollback"
    outcome: str
    model_name: str
    version: str | None
    decided_at: str = Field(default_factory=_now)
    decided_by: str = "gates"
    evaluation: Evaluation | None = None
    reasons: list[str] = Field(default_factory=list)
    aliases: dict[str, str | None] = Field(default_factory=dict)
    airflow: dict[str, str] = Field(default_factory=dict)
    # What the model server answered after the promotion (None: not smoke-tested).
    smoke_test: dict[str, Any] | None = None

    @property
    def file_stem(self) -> str:
        stamp = self.decided_at.replace(":", "").replace("-", "")
        return f"{stamp}-{self.action}-v{self.version}"


def decision_markdown(record: DecisionRecord) -> str:
    lines = [
        f"# {record.action.capitalize()}: {record.model_name} v{record.version}",
        "",
        f"- Outcome: **{record.outcome}**",
        f"- Decided at: {record.decided_at} by {record.decided_by}",
    ]
    if record.airflow:  # the approver's copy is rendered before the run records itself
        lines.append(
            "- Airflow: " + ", ".join(f"{k} `{v}`" for k, v in sorted(record.airflow.items()))
        )
    evaluation = record.evaluation
    if evaluation:
        champion = evaluation.champion
        holdout = evaluation.holdout
        lines += [
            f"- Holdout: {holdout.window} ({holdout.rows:,} rows)",
            f"- Challenger: v{evaluation.challenger.version}",
            f"- Champion: {('v' + champion.version) if champion else 'none (first model)'}",
            "",
            "| gate | value | threshold | verdict |",
            "|---|---|---|---|",
        ]
        for check in evaluation.gates.checks:
            verdict = "pass" if check.passed else "FAIL"
            lines.append(
                f"| {check.name} | {_fmt(check.value)} | {_fmt(check.threshold)} | {verdict} |"
            )
        lines += _shadow_lines(evaluation)
    if record.reasons:
        lines += ["", "Reasons:", *[f"- {reason}" for reason in record.reasons]]
    if record.aliases:
        lines += ["", f"Aliases after: {record.aliases}"]
    return "\n".join(lines) + "\n"


def _shadow_lines(evaluation: Evaluation) -> list[str]:
    lines: list[str] = []
    batch, live = evaluation.shadow, evaluation.live_shadow
    if batch:
        line = (
            f"- Shadow on {batch['date']} ({batch['rows']:,} rows, v{batch['champion_version']}'s "
            f"batch predictions): PSI {batch['psi']:.4f}"
        )
        if batch.get("flip_share") is not None:
            line += f", agreement {batch['agreement']:.1%}, flipped {batch['flip_share']:.1%}"
        lines.append(line)
    if live:
        p99 = "none" if live["p99_ms"] is None else f"{live['p99_ms']:.2f} ms"
        line = f"- Live shadow: {live['requests']:,} requests, {live['errors']} failed, p99 {p99}"
        if live.get("agreement") is not None:
            line += f", agreement {live['agreement']:.1%}"
        lines.append(line)
    return ["", *lines] if lines else []


def _fmt(value: Any) -> str:
    if value is None:
        return "none"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
