"""The ``gates`` section of a declaration: the promotion gates and their defaults per task
type (metric floors and margins, segments, fairness, budgets). These defaults are the only
ones: ``deployment.gates.GateConfig`` reads them from the validated spec."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlops_pipeline.usecases.vocabulary import Strict, Task


class MetricGateSpec(Strict):
    metric: str
    higher_is_better: bool
    bound: float = Field(description="A minimum when higher is better, a maximum otherwise.")
    max_abs_regression: float = Field(ge=0)
    max_rel_regression: float = Field(ge=0)


CLASSIFICATION_GATES: tuple[MetricGateSpec, ...] = (
    MetricGateSpec(
        metric="roc_auc",
        higher_is_better=True,
        bound=0.70,
        max_abs_regression=0.01,
        max_rel_regression=0.015,
    ),
    MetricGateSpec(
        metric="pr_auc",
        higher_is_better=True,
        bound=0.35,
        max_abs_regression=0.02,
        max_rel_regression=0.05,
    ),
    MetricGateSpec(
        metric="log_loss",
        higher_is_better=False,
        bound=0.60,
        max_abs_regression=0.01,
        max_rel_regression=0.03,
    ),
    MetricGateSpec(
        metric="brier",
        higher_is_better=False,
        bound=0.20,
        max_abs_regression=0.005,
        max_rel_regression=0.04,
    ),
)
# Regression floors are relative to the label's scale, so they hold for any unit: R^2 is
# unit-free, and the error metrics are gated against the champion only (bound = +inf).
REGRESSION_GATES: tuple[MetricGateSpec, ...] = (
    MetricGateSpec(
        metric="r2",
        higher_is_better=True,
        bound=0.3,
        max_abs_regression=0.01,
        max_rel_regression=0.02,
    ),
    MetricGateSpec(
        metric="rmse",
        higher_is_better=False,
        bound=float("inf"),
        max_abs_regression=float("inf"),
        max_rel_regression=0.03,
    ),
    MetricGateSpec(
        metric="mae",
        higher_is_better=False,
        bound=float("inf"),
        max_abs_regression=float("inf"),
        max_rel_regression=0.03,
    ),
)
PRIMARY_METRIC = {Task.BINARY_CLASSIFICATION: "roc_auc", Task.REGRESSION: "r2"}
DEFAULT_GATES = {
    Task.BINARY_CLASSIFICATION: CLASSIFICATION_GATES,
    Task.REGRESSION: REGRESSION_GATES,
}


FairnessMetric = Literal[
    "equalized_odds_difference", "demographic_parity_difference", "mae_difference"
]
FAIRNESS_METRICS: dict[Task, tuple[str, ...]] = {
    Task.BINARY_CLASSIFICATION: ("equalized_odds_difference", "demographic_parity_difference"),
    Task.REGRESSION: ("mae_difference",),
}


class FairnessPolicy(Strict):
    """The fairness gate with every setting resolved (declared, else the task type's default)."""

    metric: FairnessMetric
    max_disparity: float | None
    max_abs_increase: float
    max_rel_increase: float
    min_group_rows: int


# A classifier's disparities are differences of rates between groups, unit-free, so one absolute
# margin fits every use case; a regressor's MAE gap is in the label's unit, so it is gated
# relative to the champion's gap. Equalized odds compares error rates at the true label, so a
# model is not pushed to ignore base rates that really differ between groups.
DEFAULT_FAIRNESS = {
    Task.BINARY_CLASSIFICATION: FairnessPolicy(
        metric="equalized_odds_difference",
        max_disparity=None,
        max_abs_increase=0.02,
        max_rel_increase=float("inf"),
        min_group_rows=500,
    ),
    Task.REGRESSION: FairnessPolicy(
        metric="mae_difference",
        max_disparity=None,
        max_abs_increase=float("inf"),
        max_rel_increase=0.10,
        min_group_rows=500,
    ),
}


class FairnessGateSpec(Strict):
    """The fairness gate over ``protected_attributes``: each attribute's disparity between its
    groups (fairlearn) may not exceed ``max_disparity`` when declared, nor grow past the
    champion's by more than the tighter of the two margins. What is not declared takes the task
    type's default (``DEFAULT_FAIRNESS``)."""

    metric: FairnessMetric | None = Field(
        default=None,
        description="Classifiers: equalized_odds_difference or demographic_parity_difference "
        "(at the decision threshold); regressors: mae_difference.",
    )
    max_disparity: float | None = Field(
        default=None, ge=0, description="An absolute maximum of the disparity (off unless set)."
    )
    max_abs_increase: float | None = Field(
        default=None, ge=0, description="How much the disparity may grow past the champion's."
    )
    max_rel_increase: float | None = Field(
        default=None, ge=0, description="The same, as a share of the champion's disparity."
    )
    min_group_rows: int | None = Field(
        default=None, ge=1, description="Smaller groups are left out of the measure (noisy)."
    )

    def resolved(self, task: Task) -> FairnessPolicy:
        return DEFAULT_FAIRNESS[task].model_copy(update=self.model_dump(exclude_none=True))

    def problems(self, task: Task) -> list[str]:
        """What does not fit the task type (checked with the whole spec)."""
        if self.metric is not None and self.metric not in FAIRNESS_METRICS[task]:
            allowed = ", ".join(FAIRNESS_METRICS[task])
            return [f"metric: {self.metric!r} is not for {task.value} (choose {allowed})"]
        return []


class ShadowGateSpec(Strict):
    """Gates on the challenger in shadow, all off by default: the batch comparison on the newest
    scored partition (``scoring.shadow``) and the live shadow of the model server
    (``serving.shadow``, with ``MLOPS_SERVING_SHADOW`` on)."""

    max_flip_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Classifiers: the largest share of the newest scored partition's decisions "
        "the challenger may flip (none: off).",
    )
    min_live_requests: int = Field(
        default=0,
        ge=0,
        description="Live requests the challenger must have scored in shadow, without more "
        "than `max_live_errors` failures and within `max_live_p99_ms` (0: off).",
    )
    max_live_errors: int = Field(default=0, ge=0)
    max_live_p99_ms: float | None = Field(
        default=None,
        gt=0,
        description="The live shadow's p99 budget (none: p99_latency_budget_ms).",
    )


class GatesSpec(Strict):
    """Promotion gates. ``metrics``, ``primary_metric`` and ``fairness`` default by task type."""

    metrics: tuple[MetricGateSpec, ...] | None = None
    primary_metric: str | None = None
    segment_max_abs_regression: float = Field(
        default=0.03, ge=0, description="How far a segment's primary metric may fall."
    )
    segment_min_rows: int = Field(default=500, ge=1)
    p99_latency_budget_ms: float = Field(default=50.0, gt=0)
    model_size_budget_mb: float = Field(default=50.0, gt=0)
    fairness: FairnessGateSpec = FairnessGateSpec()
    shadow: ShadowGateSpec = ShadowGateSpec()
