"""The model's training logic on generated data: time split, threshold, metrics, determinism."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.config import Settings
from mlops_pipeline.data import contract
from mlops_pipeline.data.datagen import generate_frame
from mlops_pipeline.training.job import FEATURES_REASON, plan_training, trigger_from_events
from mlops_pipeline.training.model import (
    TrainingDataError,
    TrainingParams,
    choose_threshold,
    classification_metrics,
    model_inputs,
    split_by_time,
    train_model,
)

D0 = dt.date(2025, 6, 2)
PARAMS = TrainingParams(max_iter=60)


def training_frame(days: int = 9, rows: int = 1_500, scenario: str = "clean") -> pd.DataFrame:
    frame = pd.concat(
        [generate_frame(D0 + dt.timedelta(days=i), rows, scenario=scenario) for i in range(days)],
        ignore_index=True,
    )
    # What the on-demand feature view adds (the training set builder gets them from Feast).
    frame["charges_per_device"] = frame["monthly_charges"] / frame["num_devices"]
    frame["tickets_per_tenure_year"] = (
        frame["support_tickets_30d"] * 12.0 / (frame["tenure_months"] + 1)
    )
    return frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return training_frame()


@pytest.fixture(scope="module")
def trained(frame):
    return train_model(frame, PARAMS, min_train_rows=100)


def test_split_is_by_whole_days_in_time_order(frame):
    split = split_by_time(frame, PARAMS, 100)
    ts = contract.EVENT_TIMESTAMP
    assert split.train[ts].max() < split.validation[ts].min()
    assert split.validation[ts].max() < split.test[ts].min()
    assert len(split.test_days) == 3 and len(split.validation_days) == 3
    assert len(split.train_days) == 3
    assert len(split.train) + len(split.validation) + len(split.test) == len(frame)
    assert not set(split.train_days) & (set(split.validation_days) | set(split.test_days))


def test_split_refuses_what_cannot_train(frame):
    with pytest.raises(TrainingDataError, match="at least 7"):
        split_by_time(
            frame[frame[contract.EVENT_TIMESTAMP].dt.date < D0 + dt.timedelta(6)], PARAMS, 100
        )
    with pytest.raises(TrainingDataError, match="fewer than the minimum"):
        split_by_time(frame, PARAMS, 10**6)
    single = frame.assign(**{contract.LABEL: 0})
    with pytest.raises(TrainingDataError, match="single label class"):
        split_by_time(single, PARAMS, 100)


def test_threshold_maximises_validation_f1():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    chosen = choose_threshold(labels, scores)
    best = max(classification_metrics(labels, scores, t)["f1"] for t in np.unique(scores))
    assert classification_metrics(labels, scores, chosen)["f1"] == pytest.approx(best)


def test_metrics_on_known_values():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = classification_metrics(labels, probabilities, threshold=0.5)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["brier"] == pytest.approx(np.mean((probabilities - labels) ** 2))
    assert (metrics["precision"], metrics["recall"]) == (1.0, 0.5)


def test_model_is_good_calibrated_and_reports_segments(trained):
    assert 0.72 < trained.metrics["roc_auc"] < 0.9
    test = trained.split.test
    probabilities = trained.model.predict_proba(model_inputs(test))[:, 1]
    assert abs(probabilities.mean() - test[contract.LABEL].mean()) < 0.04
    assert set(trained.segment_metrics) == {"plan", "region"}
    assert set(trained.segment_metrics["plan"]) == set(contract.PLANS)
    assert 0 < trained.threshold < 1


def test_same_data_and_params_give_the_same_model(frame, trained):
    again = train_model(frame, PARAMS, min_train_rows=100)
    assert again.metrics == trained.metrics and again.threshold == trained.threshold
    inputs = model_inputs(trained.split.test)
    np.testing.assert_array_equal(
        again.model.predict_proba(inputs), trained.model.predict_proba(inputs)
    )


def test_training_cadence_is_measured_on_data_windows():
    settings = Settings(training_cadence_days=7)
    day = dt.date(2025, 6, 30)
    assert plan_training(settings, day, FEATURES_REASON, None).due
    assert not plan_training(settings, day, FEATURES_REASON, day - dt.timedelta(days=3)).due
    assert plan_training(settings, day, FEATURES_REASON, day - dt.timedelta(days=7)).due
    assert plan_training(settings, day, "drift: share 0.4", day).due
    waiting = plan_training(settings, day, FEATURES_REASON, None, days_available=4, days_needed=7)
    assert not waiting.due and "4 of 7" in waiting.why


def test_triggers_name_the_window_and_the_reason():
    run_after = dt.date(2025, 7, 10)
    assert trigger_from_events({}, None, "manual", run_after) == (dt.date(2025, 7, 9), "manual")
    assert trigger_from_events({}, "2025-07-01", "tune", run_after) == (dt.date(2025, 7, 1), "tune")
    features = {"customer_features_online": [{"dates": ["2025-07-03", "2025-07-04"]}]}
    assert trigger_from_events(features, None, "manual", run_after) == (
        dt.date(2025, 7, 4),
        FEATURES_REASON,
    )
    drift = {**features, "retrain_requested": [{"date": "2025-07-05", "reason": "drift 0.4"}]}
    assert trigger_from_events(drift, None, "manual", run_after) == (
        dt.date(2025, 7, 5),
        "drift: drift 0.4",
    )
