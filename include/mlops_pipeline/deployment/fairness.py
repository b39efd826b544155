"""Fairness of one model on the holdout: how differently it treats the groups of each protected
attribute the use case declares.

Measured with fairlearn (``MetricFrame`` for the per-group values; its
``equalized_odds_difference`` and ``demographic_parity_difference`` for a classifier's decisions
at its threshold, the between-group difference of the mean absolute error for a regressor). The
metric and the group minimum come from the declaration (``gates.fairness``). Groups with too few
rows are left out, as are, for equalized odds, groups missing a class (their true or false
positive rate is undefined, and fairlearn would count it as zero).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_pipeline.failures import PermanentFailure

if TYPE_CHECKING:
    import pandas as pd

    from mlops_pipeline.usecases.gate_spec import FairnessPolicy
    from mlops_pipeline.usecases.spec import UseCaseSpec

# The per-group values each metric is the between-group difference of.
GROUP_METRICS = {
    "demographic_parity_difference": ("selection_rate",),
    "equalized_odds_difference": ("true_positive_rate", "false_positive_rate"),
    "mae_difference": ("mean_absolute_error",),
}


@dataclass(frozen=True)
class GroupValues:
    rows: int
    values: Mapping[str, float]


@dataclass(frozen=True)
class AttributeFairness:
    """One protected attribute's disparity (None when fewer than two groups could be
    compared), the values it compares and the groups left out, with why."""

    attribute: str
    metric: str
    disparity: float | None
    groups: Mapping[str, GroupValues]
    skipped_groups: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe_groups(self) -> str:
        measured = ", ".join(f"{name} ({g.rows} rows)" for name, g in self.groups.items())
        skipped = "; ".join(f"{name}: {why}" for name, why in self.skipped_groups.items())
        return f"groups {measured or 'none'}" + (f"; left out {skipped}" if skipped else "")


class FairnessError(PermanentFailure):
    """A model's fairness cannot be measured as asked (no threshold, no such column)."""


def _skip_reason(policy: FairnessPolicy, rows: int, labels: np.ndarray) -> str | None:
    if rows < policy.min_group_rows:
        return f"{rows} rows, fewer than {policy.min_group_rows}"
    if policy.metric == "equalized_odds_difference" and len(np.unique(labels)) < 2:
        return "one label class only"
    return None


def attribute_fairness(
    attribute: str,
    policy: FairnessPolicy,
    groups: np.ndarray,
    labels: np.ndarray,
    outputs: np.ndarray,
) -> AttributeFairness:
    """``groups``: each row's group name; ``outputs``: a classifier's 0/1 decisions, a
    regressor's predictions."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import mean_absolute_error

    names, sizes = np.unique(groups, return_counts=True)
    skipped: dict[str, str] = {}
    for name, size in zip(names.tolist(), sizes.tolist(), strict=True):
        reason = _skip_reason(policy, size, labels[groups == name])
        if reason:
            skipped[name] = reason
    kept = ~np.isin(groups, list(skipped))
    groups, labels, outputs = groups[kept], labels[kept], outputs[kept]
    if len(np.unique(groups)) < 2:
        return AttributeFairness(attribute, policy.metric, None, {}, skipped)
    functions = {
        "selection_rate": selection_rate,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "mean_absolute_error": mean_absolute_error,
    }
    frame = MetricFrame(
        metrics={m: functions[m] for m in GROUP_METRICS[policy.metric]},
        y_true=labels,
        y_pred=outputs,
        sensitive_features=groups,
    )
    rows = dict(zip(names.tolist(), sizes.tolist(), strict=True))
    measured = {
        str(name): GroupValues(rows[name], {m: float(v) for m, v in values.items()})
        for name, values in frame.by_group.iterrows()
    }
    if policy.metric == "equalized_odds_difference":
        disparity = equalized_odds_difference(labels, outputs, sensitive_features=groups)
    elif policy.metric == "demographic_parity_difference":
        disparity = demographic_parity_difference(labels, outputs, sensitive_features=groups)
    else:
        disparity = frame.difference()["mean_absolute_error"]
    return AttributeFairness(attribute, policy.metric, float(disparity), measured, skipped)


def fairness_by_attribute(
    spec: UseCaseSpec,
    frame: pd.DataFrame,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float | None,
) -> dict[str, AttributeFairness]:
    """Each protected attribute's fairness on ``frame`` (the holdout rows, in the order of
    ``labels`` and ``scores``); a classifier is judged by its decisions at ``threshold``."""
    policy = spec.gates.fairness.resolved(spec.task)
    if spec.is_classifier:
        if threshold is None:
            raise FairnessError(f"{spec.name}: a classifier's fairness is measured at a threshold")
        outputs = (np.asarray(scores) >= threshold).astype(np.int64)
        truth = np.asarray(labels).astype(np.int64)
    else:
        outputs = np.asarray(scores, dtype="float64")
        truth = np.asarray(labels, dtype="float64")
    missing = [a for a in spec.protected_attributes if a not in frame.columns]
    if missing:
        raise FairnessError(f"{spec.name}: the holdout has no protected attribute {missing}")
    return {
        attribute: attribute_fairness(
            attribute, policy, frame[attribute].astype(str).to_numpy(), truth, outputs
        )
        for attribute in spec.protected_attributes
    }
