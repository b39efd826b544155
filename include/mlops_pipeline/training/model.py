"""Train the churn classifier on a point-in-time correct training set.

The split is by time (train, then validation, then test days: never a random split across
time), the model is a scikit-learn pipeline around a class-balanced gradient-boosted
classifier, its probabilities are calibrated on the validation days, and the decision
threshold is chosen there too. Everything is seeded: the same data and parameters give the
same model and the same metrics.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_pipeline.data import contract
from mlops_pipeline.features.groups import ON_DEMAND_FEATURES

SEGMENT_COLUMNS = ("plan", "region")
MODEL_FEATURES: tuple[str, ...] = (*contract.FEATURE_COLUMNS, *ON_DEMAND_FEATURES)


class TrainingDataError(ValueError):
    """The training data cannot produce a trustworthy model: deterministic, do not retry."""


@dataclass(frozen=True)
class TrainingParams:
    validation_days: int = 3
    test_days: int = 3
    learning_rate: float = 0.08
    max_iter: int = 250
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    calibration: str = "isotonic"
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingParams:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)


@dataclass
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    train_days: list[dt.date]
    validation_days: list[dt.date]
    test_days: list[dt.date]

    def windows(self) -> dict[str, str]:
        def span(days: list[dt.date]) -> str:
            return f"{days[0].isoformat()}..{days[-1].isoformat()}"

        return {
            "train": span(self.train_days),
            "validation": span(self.validation_days),
            "test": span(self.test_days),
        }


def split_by_time(
    frame: pd.DataFrame, params: TrainingParams, min_train_rows: int = 1_000
) -> Split:
    """Whole days, in order: the last ``test_days`` days test, the ``validation_days`` before
    them validate, all earlier days train. No day is in two parts."""
    day_of_row = frame[contract.EVENT_TIMESTAMP].dt.date
    days = sorted(day_of_row.unique())
    needed = params.validation_days + params.test_days + 1
    if len(days) < needed:
        raise TrainingDataError(
            f"{len(days)} day(s) of data; a time split needs at least {needed} "
            f"({params.validation_days} validation + {params.test_days} test + 1 train)"
        )
    test_days = days[-params.test_days :]
    validation_days = days[-needed + 1 : -params.test_days]
    train_days = days[: -needed + 1]
    parts = {
        name: frame.loc[day_of_row.isin(part)].reset_index(drop=True)
        for name, part in (
            ("train", train_days),
            ("validation", validation_days),
            ("test", test_days),
        )
    }
    if len(parts["train"]) < min_train_rows:
        raise TrainingDataError(
            f"{len(parts['train'])} training rows, fewer than the minimum {min_train_rows}"
        )
    for name, part in parts.items():
        classes = part[contract.LABEL].nunique()
        if classes < 2:
            raise TrainingDataError(
                f"the {name} window has a single label class ({part[contract.LABEL].iloc[0]}): "
                "a classifier cannot be trained or evaluated on it"
            )
    return Split(
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        train_days=list(train_days),
        validation_days=list(validation_days),
        test_days=list(test_days),
    )


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns, typed as the signature declares them."""
    inputs = frame[list(MODEL_FEATURES)].copy()
    for name in contract.CATEGORICAL_FEATURES:
        inputs[name] = inputs[name].astype(str)
    for name in contract.BOOLEAN_FEATURES:
        inputs[name] = inputs[name].astype(bool)
    for name in MODEL_FEATURES:
        if name not in contract.CATEGORICAL_FEATURES and name not in contract.BOOLEAN_FEATURES:
            inputs[name] = inputs[name].astype("float64")
    return inputs


def build_pipeline(params: TrainingParams) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    categorical = list(contract.CATEGORICAL_FEATURES)
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(
                    categories=[list(contract.column(n).values) for n in categorical],
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                ),
                categorical,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    model = HistGradientBoostingClassifier(
        learning_rate=params.learning_rate,
        max_iter=params.max_iter,
        max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization,
        # Churners are a minority: weight them up, then calibrate the probabilities back.
        class_weight="balanced",
        categorical_features=list(range(len(categorical))),
        early_stopping=False,
        random_state=params.seed,
    )
    return Pipeline([("encode", encode), ("model", model)])


@dataclass
class TrainedModel:
    model: Any  # calibrated classifier: predict_proba on ``model_inputs`` frames
    threshold: float
    split: Split
    params: TrainingParams
    metrics: dict[str, float] = field(default_factory=dict)
    segment_metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The probability cut that maximises F1 on the validation days (ties: the lower cut)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.argmax(f1[:-1]))
    return float(thresholds[best])


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, float]:
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    decisions = (probabilities >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "pr_auc": float(average_precision_score(labels, probabilities)),
        "log_loss": float(log_loss(labels, probabilities, labels=[0, 1])),
        "brier": float(brier_score_loss(labels, probabilities)),
        "precision": float(precision_score(labels, decisions, zero_division=0)),
        "recall": float(recall_score(labels, decisions, zero_division=0)),
        "f1": float(f1_score(labels, decisions, zero_division=0)),
        "positive_rate": float(labels.mean()),
        "rows": float(len(labels)),
    }


def segment_metrics(
    frame: pd.DataFrame, probabilities: np.ndarray, threshold: float
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each segment column; a segment with one class gets no AUCs."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    labels = frame[contract.LABEL].to_numpy()
    for column in SEGMENT_COLUMNS:
        result[column] = {}
        for value in sorted(frame[column].astype(str).unique()):
            mask = (frame[column].astype(str) == value).to_numpy()
            if len(np.unique(labels[mask])) < 2:
                continue
            result[column][value] = classification_metrics(
                labels[mask], probabilities[mask], threshold
            )
    return result


def train_model(frame: pd.DataFrame, params: TrainingParams, min_train_rows: int) -> TrainedModel:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    split = split_by_time(frame, params, min_train_rows)
    pipeline = build_pipeline(params)
    pipeline.fit(model_inputs(split.train), split.train[contract.LABEL].to_numpy())
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline), method=params.calibration)
    calibrated.fit(model_inputs(split.validation), split.validation[contract.LABEL].to_numpy())

    validation_probabilities = calibrated.predict_proba(model_inputs(split.validation))[:, 1]
    threshold = choose_threshold(
        split.validation[contract.LABEL].to_numpy(), validation_probabilities
    )
    test_probabilities = calibrated.predict_proba(model_inputs(split.test))[:, 1]
    metrics = classification_metrics(
        split.test[contract.LABEL].to_numpy(), test_probabilities, threshold
    )
    return TrainedModel(
        model=calibrated,
        threshold=threshold,
        split=split,
        params=params,
        metrics=metrics,
        segment_metrics=segment_metrics(split.test, test_probabilities, threshold),
    )
