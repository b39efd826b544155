"""Promotion gates: may a challenger replace the champion?

Configured by the use case's declaration only (``GateConfig.from_spec``: the gated metrics and
their directions, bounds and margins, the primary metric, the segment margin and the budgets;
the defaults per task type live in the spec). A challenger is promoted only when every check
passes: absolute bounds on quality (a metric declared with an infinite bound is gated against
the champion only), no regression beyond a margin against the champion on any
gated metric (absolute and relative, with each metric's direction), no segment regressing
beyond its margin, calibration, latency and size budgets, and a signature the serving schema
accepts; against an existing champion it must also be strictly better on the primary metric,
so ties never promote. The first model is promoted when it clears the floors and budgets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_pipeline.usecases.spec import UseCaseSpec


@dataclass(frozen=True)
class MetricGate:
    metric: str
    higher_is_better: bool
    # Absolute bound: a minimum when higher is better, a maximum otherwise.
    bound: float
    # How much worse than the champion is tolerated, absolutely and relatively (both apply).
    max_abs_regression: float
    max_rel_regression: float


@dataclass(frozen=True)
class GateConfig:
    metrics: tuple[MetricGate, ...]
    primary_metric: str
    # Each segment's primary metric may fall at most this much below the champion's.
    segment_max_abs_regression: float
    # Segments with fewer holdout rows are too noisy to gate on.
    segment_min_rows: int
    p99_latency_budget_ms: float
    model_size_budget_mb: float

    @classmethod
    def from_spec(cls, spec: UseCaseSpec) -> GateConfig:
        """The gates the use case declares (its task type's defaults where it declares none)."""
        gates = spec.gates
        return cls(
            metrics=tuple(
                MetricGate(
                    metric=g.metric,
                    higher_is_better=g.higher_is_better,
                    bound=g.bound,
                    max_abs_regression=g.max_abs_regression,
                    max_rel_regression=g.max_rel_regression,
                )
                for g in spec.gate_metrics
            ),
            primary_metric=spec.primary_metric,
            segment_max_abs_regression=gates.segment_max_abs_regression,
            segment_min_rows=gates.segment_min_rows,
            p99_latency_budget_ms=gates.p99_latency_budget_ms,
            model_size_budget_mb=gates.model_size_budget_mb,
        )

    def gate(self, metric: str) -> MetricGate:
        return next(g for g in self.metrics if g.metric == metric)


@dataclass(frozen=True)
class Scores:
    """What the gates look at for one model, measured on the frozen holdout."""

    metrics: Mapping[str, float]
    # segment ("<column>=<value>") -> (rows, primary metric value)
    segments: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    p99_latency_ms: float = 0.0
    model_size_mb: float = 0.0
    signature_compatible: bool = True


@dataclass(frozen=True)
class Check:
    name: str
    value: float | str | None
    threshold: float | str | None
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    checks: tuple[Check, ...]
    first_model: bool

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.failures]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "first_model": self.first_model,
            "checks": [c.to_dict() for c in self.checks],
            "reasons": self.reasons(),
        }


def _allowed(gate: MetricGate, champion: float) -> float:
    """The regression tolerated against ``champion``: the tighter of the absolute and the
    relative margin (an infinite margin does not bind)."""
    rate = gate.max_rel_regression
    relative = rate * abs(champion) if math.isfinite(rate) else math.inf
    return min(gate.max_abs_regression, relative)


def _amount(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "any"


def _worse_by(gate: MetricGate, challenger: float, champion: float) -> float:
    """How much worse the challenger is (positive) or better (negative), in metric units."""
    return champion - challenger if gate.higher_is_better else challenger - champion


def evaluate_gates(challenger: Scores, champion: Scores | None, config: GateConfig) -> GateReport:
    checks: list[Check] = []
    for gate in config.metrics:
        value = challenger.metrics[gate.metric]
        if not math.isfinite(gate.bound):
            checks.append(
                Check(
                    f"floor:{gate.metric}",
                    value,
                    None,
                    not math.isnan(value),
                    f"{value:.4f}: no bound declared (gated against the champion only)",
                )
            )
            continue
        ok = value >= gate.bound if gate.higher_is_better else value <= gate.bound
        relation = ">=" if gate.higher_is_better else "<="
        checks.append(
            Check(
                f"floor:{gate.metric}",
                value,
                gate.bound,
                ok,
                f"{value:.4f} must be {relation} {gate.bound}",
            )
        )
    checks.append(
        Check(
            "budget:p99_latency_ms",
            challenger.p99_latency_ms,
            config.p99_latency_budget_ms,
            challenger.p99_latency_ms <= config.p99_latency_budget_ms,
            f"{challenger.p99_latency_ms:.2f} ms, budget {config.p99_latency_budget_ms} ms",
        )
    )
    checks.append(
        Check(
            "budget:model_size_mb",
            challenger.model_size_mb,
            config.model_size_budget_mb,
            challenger.model_size_mb <= config.model_size_budget_mb,
            f"{challenger.model_size_mb:.2f} MB, budget {config.model_size_budget_mb} MB",
        )
    )
    checks.append(
        Check(
            "signature:serving_schema",
            str(challenger.signature_compatible),
            "True",
            challenger.signature_compatible,
            "inputs match the serving schema"
            if challenger.signature_compatible
            else "inputs differ from the serving schema",
        )
    )
    if champion is None:
        return GateReport(checks=tuple(checks), first_model=True)

    for gate in config.metrics:
        new, old = challenger.metrics[gate.metric], champion.metrics[gate.metric]
        worse = _worse_by(gate, new, old)
        allowed = _allowed(gate, old)
        checks.append(
            Check(
                f"regression:{gate.metric}",
                new,
                old,
                worse <= allowed,
                f"challenger {new:.4f} vs champion {old:.4f}: worse by {max(worse, 0):.4f}, "
                f"allowed {_amount(allowed)}",
            )
        )
    primary = config.gate(config.primary_metric)
    new, old = challenger.metrics[primary.metric], champion.metrics[primary.metric]
    checks.append(
        Check(
            f"improvement:{primary.metric}",
            new,
            old,
            _worse_by(primary, new, old) < 0,
            f"challenger {new:.4f} must beat champion {old:.4f} (ties keep the champion)",
        )
    )
    for segment, (rows, value) in sorted(challenger.segments.items()):
        if segment not in champion.segments or rows < config.segment_min_rows:
            continue
        old_value = champion.segments[segment][1]
        worse = _worse_by(primary, value, old_value)
        checks.append(
            Check(
                f"segment:{segment}:{primary.metric}",
                value,
                old_value,
                worse <= config.segment_max_abs_regression,
                f"{value:.4f} vs {old_value:.4f}: worse by {max(worse, 0):.4f}, "
                f"allowed {config.segment_max_abs_regression}",
            )
        )
    return GateReport(checks=tuple(checks), first_model=False)
