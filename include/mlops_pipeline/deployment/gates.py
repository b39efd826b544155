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

Each protected attribute gets one fairness check: its disparity (``deployment.fairness``) may
not exceed the declared maximum, if any, nor grow past the champion's beyond the margin. An
attribute whose groups are all too small to compare is reported, not gated.

The shadow gates, off unless ``gates.shadow`` turns them on, judge the challenger on real
inputs beside the holdout: the share of the newest scored partition's decisions it would flip
(``scoring.shadow``), and the live shadow's request count, failures and p99
(``live_shadow_checks``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_pipeline.usecases.gate_spec import ShadowGateSpec

if TYPE_CHECKING:
    from mlops_pipeline.deployment.fairness import AttributeFairness
    from mlops_pipeline.serving.shadow import ShadowSummary
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
    protected_attributes: tuple[str, ...]
    # The fairness metric as a lower-is-better gate: its bound is the declared maximum
    # disparity (infinite when none is), its margins the tolerated growth over the champion's.
    fairness: MetricGate
    # The shadow gates (off unless declared): ``shadow_checks``.
    shadow: ShadowGateSpec = field(default_factory=ShadowGateSpec)

    @classmethod
    def from_spec(cls, spec: UseCaseSpec) -> GateConfig:
        """The gates the use case declares (its task type's defaults where it declares none)."""
        gates = spec.gates
        fairness = gates.fairness.resolved(spec.task)
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
            protected_attributes=spec.protected_attributes,
            fairness=MetricGate(
                metric=fairness.metric,
                higher_is_better=False,
                bound=math.inf if fairness.max_disparity is None else fairness.max_disparity,
                max_abs_regression=fairness.max_abs_increase,
                max_rel_regression=fairness.max_rel_increase,
            ),
            shadow=gates.shadow,
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
    # protected attribute -> its fairness (``deployment.fairness.fairness_by_attribute``)
    fairness: Mapping[str, AttributeFairness] = field(default_factory=dict)


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
    checks += [
        _fairness_check(attribute, challenger, champion, config)
        for attribute in config.protected_attributes
    ]
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


def _fairness_check(
    attribute: str, challenger: Scores, champion: Scores | None, config: GateConfig
) -> Check:
    """The declared maximum (if any) and, with a champion measured on the attribute, the
    tolerated growth over its disparity; the check's threshold shows the tighter of the two."""
    gate = config.fairness
    name = f"fairness:{attribute}:{gate.metric}"
    measured = challenger.fairness.get(attribute)
    if measured is None:
        return Check(name, None, None, False, "not measured: the challenger has no result for it")
    value = measured.disparity
    if value is None:
        groups = measured.describe_groups()
        return Check(name, None, None, True, f"not gated: fewer than two groups ({groups})")
    passed, limit = True, math.inf
    reasons = [f"{value:.4f} between {measured.describe_groups()}"]
    if math.isfinite(gate.bound):
        passed, limit = value <= gate.bound, gate.bound
        reasons.append(f"must be <= {gate.bound}")
    old = champion.fairness.get(attribute) if champion is not None else None
    if old is not None and old.disparity is not None:
        # Compared as the metric regressions are (growth against margin), so the verdict
        # matches the detail's figures.
        worse, allowed = value - old.disparity, _allowed(gate, old.disparity)
        passed = passed and worse <= allowed
        limit = min(limit, old.disparity + allowed)
        reasons.append(
            f"champion {old.disparity:.4f}: worse by {max(worse, 0):.4f}, "
            f"allowed {_amount(allowed)}"
        )
    elif champion is not None:
        reasons.append("the champion has no disparity to compare with")
    if len(reasons) == 1:
        reasons.append("reported only (no maximum declared, no champion to compare with)")
    return Check(name, value, limit if math.isfinite(limit) else None, passed, "; ".join(reasons))


LIVE_REQUESTS_CHECK = "shadow_live_requests"
LIVE_ERRORS_CHECK = "shadow_live_errors"
LIVE_P99_CHECK = "shadow_live_p99_ms"


def live_shadow_checks(summary: ShadowSummary | None, config: GateConfig) -> list[Check]:
    """The live shadow's gates (``gates.shadow.min_live_requests`` > 0 turns them on): enough
    shadow requests of this challenger, few enough failures, and its p99 within budget."""
    gate = config.shadow
    if gate.min_live_requests == 0:
        return []
    requests = summary.requests if summary else 0
    errors = summary.errors if summary else 0
    p99 = summary.p99_ms if summary else None
    budget = gate.max_live_p99_ms or config.p99_latency_budget_ms
    return [
        Check(
            LIVE_REQUESTS_CHECK,
            float(requests),
            float(gate.min_live_requests),
            requests >= gate.min_live_requests,
            f"{requests} live requests scored in shadow, {gate.min_live_requests} needed",
        ),
        Check(
            LIVE_ERRORS_CHECK,
            float(errors),
            float(gate.max_live_errors),
            errors <= gate.max_live_errors,
            f"{errors} shadow requests failed, at most {gate.max_live_errors} allowed",
        ),
        Check(
            LIVE_P99_CHECK,
            p99,
            budget,
            p99 is not None and p99 <= budget,
            "no shadow latency yet" if p99 is None else f"p99 {p99:.2f} ms, budget {budget} ms",
        ),
    ]


def with_checks(report: GateReport, checks: list[Check]) -> GateReport:
    """``report`` with ``checks`` added (the shadow gates, judged after the holdout's)."""
    return GateReport(checks=(*report.checks, *checks), first_model=report.first_model)
