"""Fairness on the holdout: a model that treats groups differently is measured so by the amount
its construction implies (recomputed here by hand), a fair one is not, small groups are left out,
and a regressor is judged by its MAE gap."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.deployment.fairness import FairnessError, fairness_by_attribute
from mlops_pipeline.usecases.spec import UseCaseSpec
from tests.unit.small_usecase import small_declaration

THRESHOLD = 0.5
FLAGGED, PASSED = 0.8, 0.2  # scores on either side of THRESHOLD


def spec_with(task: str = "binary_classification", **fairness: object) -> UseCaseSpec:
    declaration = small_declaration(task) | {"protected_attributes": ["colour"]}
    declaration["gates"] = {"fairness": fairness}
    return UseCaseSpec.model_validate(declaration)


def group_rows(
    colour: str, rows: int, positive_share: float, tpr: float, fpr: float
) -> pd.DataFrame:
    """``rows`` of one group whose decisions flag exactly ``tpr`` of its positives and ``fpr``
    of its negatives."""
    positives = round(rows * positive_share)
    negatives = rows - positives
    labels = np.r_[np.ones(positives, int), np.zeros(negatives, int)]
    flagged = np.r_[
        np.arange(positives) < round(positives * tpr),
        np.arange(negatives) < round(negatives * fpr),
    ]
    scores = np.where(flagged, FLAGGED, PASSED)
    return pd.DataFrame({"colour": colour, "outcome": labels, "score": scores})


def measure(spec: UseCaseSpec, *groups: pd.DataFrame, threshold: float | None = THRESHOLD):
    frame = pd.concat(groups, ignore_index=True).sample(frac=1.0, random_state=7)
    result = fairness_by_attribute(
        spec, frame, frame["outcome"].to_numpy(), frame["score"].to_numpy(), threshold
    )
    return result["colour"], frame


def by_hand(frame: pd.DataFrame) -> tuple[float, float]:
    """Equalized odds and demographic parity differences, straight from their definitions."""
    decided = frame.assign(decision=frame["score"] >= THRESHOLD)
    positives = decided[decided["outcome"] == 1].groupby("colour")["decision"].mean()
    negatives = decided[decided["outcome"] == 0].groupby("colour")["decision"].mean()
    selection = decided.groupby("colour")["decision"].mean()

    def spread(rates: pd.Series) -> float:
        return float(rates.max() - rates.min())

    return max(spread(positives), spread(negatives)), spread(selection)


BIASED = (
    group_rows("red", 1_000, positive_share=0.5, tpr=0.9, fpr=0.2),
    group_rows("green", 1_000, positive_share=0.5, tpr=0.6, fpr=0.1),
)


def test_a_biased_classifier_is_measured_by_equalized_odds_by_default():
    result, frame = measure(spec_with(), *BIASED)
    equalized_odds, _ = by_hand(frame)
    assert result.metric == "equalized_odds_difference"
    assert result.disparity == pytest.approx(equalized_odds) == pytest.approx(0.3)
    red = result.groups["red"]
    assert red.rows == 1_000
    assert red.values["true_positive_rate"] == pytest.approx(0.9)
    assert red.values["false_positive_rate"] == pytest.approx(0.2)
    assert not result.skipped_groups
    recorded = json.loads(json.dumps(result.to_dict()))  # as the decision record keeps it
    assert recorded["groups"]["green"]["rows"] == 1_000
    assert recorded["disparity"] == pytest.approx(0.3)


def test_demographic_parity_compares_selection_rates_at_the_threshold():
    result, frame = measure(spec_with(metric="demographic_parity_difference"), *BIASED)
    _, parity = by_hand(frame)
    # red selects (0.9 + 0.2) / 2 of its rows, green (0.6 + 0.1) / 2.
    assert result.disparity == pytest.approx(parity) == pytest.approx(0.2)
    assert set(result.groups["green"].values) == {"selection_rate"}
    # Decisions are taken at the model's own threshold: above every score, nobody is selected.
    above, _ = measure(spec_with(metric="demographic_parity_difference"), *BIASED, threshold=0.9)
    assert above.disparity == 0.0


def test_a_fair_classifier_is_not_measured_as_biased():
    # Different base rates, same error rates: equalized odds sees no disparity.
    result, _ = measure(
        spec_with(),
        group_rows("red", 1_000, positive_share=0.2, tpr=0.7, fpr=0.1),
        group_rows("green", 800, positive_share=0.5, tpr=0.7, fpr=0.1),
    )
    assert result.disparity == pytest.approx(0.0, abs=1e-12)


def test_small_groups_are_left_out_unless_the_declared_minimum_admits_them():
    tiny = group_rows("blue", 100, positive_share=0.5, tpr=0.0, fpr=1.0)
    default, _ = measure(spec_with(), *BIASED, tiny)
    assert set(default.groups) == {"red", "green"}
    assert default.skipped_groups == {"blue": "100 rows, fewer than 500"}
    assert default.disparity == pytest.approx(0.3)

    admitted, frame = measure(spec_with(min_group_rows=50), *BIASED, tiny)
    assert set(admitted.groups) == {"red", "green", "blue"} and not admitted.skipped_groups
    assert admitted.disparity == pytest.approx(by_hand(frame)[0]) == pytest.approx(0.9)


def test_equalized_odds_leaves_out_a_group_with_one_label_class():
    # Its true positive rate is undefined; counted as zero it would fake a disparity.
    no_positives = group_rows("blue", 600, positive_share=0.0, tpr=0.0, fpr=0.2)
    result, _ = measure(spec_with(), *BIASED, no_positives)
    assert result.skipped_groups == {"blue": "one label class only"}
    parity, _ = measure(spec_with(metric="demographic_parity_difference"), *BIASED, no_positives)
    assert "blue" in parity.groups, "selection rates need no positives"


def test_with_fewer_than_two_comparable_groups_there_is_no_disparity():
    result, _ = measure(spec_with(), BIASED[0], group_rows("green", 50, 0.5, 0.6, 0.1))
    assert result.disparity is None and not result.groups
    assert "green" in result.skipped_groups


def test_a_regressor_is_judged_by_its_mean_absolute_error_gap():
    spec = spec_with("regression")
    rng = np.random.default_rng(3)
    truth = rng.uniform(10, 50, 1_400)
    errors = np.r_[np.full(700, 2.0), np.full(700, 5.0)] * rng.choice([-1, 1], 1_400)
    frame = pd.DataFrame({"colour": ["red"] * 700 + ["green"] * 700})
    result = fairness_by_attribute(spec, frame, truth, truth + errors, None)["colour"]
    assert result.metric == "mae_difference"
    assert result.groups["red"].values == {"mean_absolute_error": pytest.approx(2.0)}
    assert result.groups["green"].values == {"mean_absolute_error": pytest.approx(5.0)}
    assert result.disparity == pytest.approx(3.0)


def test_no_protected_attributes_measure_nothing_and_mistakes_are_permanent():
    declaration = small_declaration("binary_classification")
    plain = UseCaseSpec.model_validate(declaration)
    frame = BIASED[0]
    labels, scores = frame["outcome"].to_numpy(), frame["score"].to_numpy()
    assert fairness_by_attribute(plain, frame, labels, scores, THRESHOLD) == {}
    with pytest.raises(FairnessError, match="at a threshold"):
        fairness_by_attribute(spec_with(), frame, labels, scores, None)
    with pytest.raises(FairnessError, match=r"no protected attribute \['colour'\]"):
        fairness_by_attribute(spec_with(), frame.drop(columns="colour"), labels, scores, 0.5)
