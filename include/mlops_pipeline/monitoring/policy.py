"""When a night asks to retrain: the declaration's retrain policy and the decision.

A night is *drifted* when the share of drifting features or the degradation of the champion's
primary metric on the partition's labelled rows crosses its threshold. Retraining is requested
only when the change is real: at least k of the last n partitions drifted (persistence, not a
one-night blip), the partition is big enough to judge (small ones are reported, never acted
on), and no retrain was requested within the cooldown (in partitions). A hard performance drop
skips persistence and cooldown. Every threshold is the declaration's ``drift`` section.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from mlops_pipeline.usecases.spec import UseCaseSpec
from mlops_pipeline.usecases.vocabulary import PartitionField, partition_key


@dataclass(frozen=True)
class RetrainPolicy:
    """The declaration's retrain policy (``drift`` section), counted in partitions."""

    drift_share_threshold: float
    performance_metric: str
    performance_drop_threshold: float
    hard_drop_threshold: float
    nights_required: int
    nights_window: int
    min_partition_rows: int
    cooldown_partitions: int
    partition_length: dt.timedelta = dt.timedelta(days=1)

    @classmethod
    def from_spec(cls, spec: UseCaseSpec) -> RetrainPolicy:
        drift = spec.drift
        return cls(
            drift_share_threshold=drift.share_threshold,
            performance_metric=spec.primary_metric,
            performance_drop_threshold=drift.performance_drop_threshold,
            hard_drop_threshold=drift.hard_drop_threshold,
            nights_required=drift.nights_required,
            nights_window=drift.nights_window,
            min_partition_rows=drift.min_partition_rows,
            cooldown_partitions=drift.cooldown_partitions,
            partition_length=spec.cadence.length,
        )

    def partitions_back(self, night: dt.date, count: int) -> list[dt.date]:
        """``night`` and the ``count - 1`` partitions before it, newest first."""
        return [night - self.partition_length * i for i in range(count)]

    def partitions_between(self, earlier: dt.date, later: dt.date) -> int:
        return (later - earlier) // self.partition_length

    @property
    def lookback_partitions(self) -> int:
        return max(self.nights_window - 1, self.cooldown_partitions)


@dataclass
class NightFlags:
    """What one night measured, reduced to what the decision needs. ``performance_drop`` is
    how much worse the primary metric is than at test time (see ``drift.degradation``)."""

    rows: int
    drift_share: float
    drifted_columns: list[str] = field(default_factory=list)
    performance_drop: float | None = None

    def data_drift(self, policy: RetrainPolicy) -> bool:
        return self.drift_share >= policy.drift_share_threshold

    def performance_dropped(self, policy: RetrainPolicy) -> bool:
        drop = self.performance_drop
        return drop is not None and drop >= policy.performance_drop_threshold

    def hard_drop(self, policy: RetrainPolicy) -> bool:
        drop = self.performance_drop
        return drop is not None and drop >= policy.hard_drop_threshold

    def counts(self, policy: RetrainPolicy) -> bool:
        """Whether this night counts as drifted towards k of n (small partitions never do)."""
        return self.rows >= policy.min_partition_rows and (
            self.data_drift(policy) or self.performance_dropped(policy)
        )


class Decision(BaseModel):
    """Whether a night requests a retrain, and why."""

    retrain: bool
    reasons: list[str] = Field(default_factory=list)
    drifted: bool = False  # counts towards k of n
    nights_flagged: list[PartitionField] = Field(default_factory=list)
    last_request: PartitionField | None = None  # the newest earlier night that requested a retrain


def decide(
    night: dt.date,
    tonight: NightFlags,
    earlier: Mapping[dt.date, Decision],
    policy: RetrainPolicy,
) -> Decision:
    """Whether ``night`` requests a retrain. ``earlier`` maps earlier nights to their
    decisions; nights without one did not drift."""
    drifted = tonight.counts(policy)
    window = policy.partitions_back(night, policy.nights_window)
    flagged = sorted(
        d
        for d in window
        if (d == night and drifted) or (d != night and d in earlier and earlier[d].drifted)
    )
    requests = [d for d, decision in earlier.items() if d < night and decision.retrain]
    last_request = max(requests) if requests else None
    metric = policy.performance_metric
    signals = []
    if tonight.data_drift(policy):
        columns = ", ".join(tonight.drifted_columns) or "-"
        signals.append(
            f"data drift: share {tonight.drift_share:.2f} >= {policy.drift_share_threshold:.2f} "
            f"({columns})"
        )
    if tonight.performance_dropped(policy):
        signals.append(
            f"performance: {metric} {tonight.performance_drop:.3f} worse than the champion's "
            f"test {metric} (threshold {policy.performance_drop_threshold:.3f})"
        )

    def result(retrain: bool, reasons: list[str]) -> Decision:
        return Decision(
            retrain=retrain,
            reasons=reasons,
            drifted=drifted,
            nights_flagged=flagged,
            last_request=last_request,
        )

    if tonight.rows < policy.min_partition_rows:
        return result(
            False,
            [
                f"partition of {tonight.rows} rows is below the minimum "
                f"{policy.min_partition_rows}: reported, not acted on",
                *signals,
            ],
        )
    if tonight.hard_drop(policy):
        return result(
            True,
            [
                f"hard performance drop: {metric} {tonight.performance_drop:.3f} worse than the "
                f"test {metric} (>= {policy.hard_drop_threshold:.3f}); persistence and cooldown "
                "skipped",
                *signals,
            ],
        )
    if not drifted:
        return result(False, ["no drift over the thresholds"])
    persistence = (
        f"drifted on {len(flagged)} of the last {policy.nights_window} nights "
        f"({policy.nights_required} needed)"
    )
    if len(flagged) < policy.nights_required:
        return result(False, [persistence, *signals])
    if (
        last_request is not None
        and (since := policy.partitions_between(last_request, night)) < policy.cooldown_partitions
    ):
        return result(
            False,
            [
                f"cooldown: retrain requested on {partition_key(last_request)}, "
                f"{since} partition(s) ago (cooldown {policy.cooldown_partitions})",
                persistence,
                *signals,
            ],
        )
    return result(True, [*signals, persistence])
