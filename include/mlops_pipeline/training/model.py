"""Train a use case's model on a point-in-time correct training set.

The split is by time, in whole partitions of the use case's cadence (train, then validation,
then test partitions: never a random split across time). The model is a scikit-learn pipeline
(ordinal encoding of the categories, then gradient-boosted trees) with the hyperparameters the
use case declares. A classifier is class-balanced, its probabilities are calibrated on the
validation partitions and its decision threshold is chosen there too; a regressor predicts the
label itself. Everything is seeded: the same data and declaration give the same model and the
same metrics.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlops_pipeline.failures import PermanentFailure, SpecError
from mlops_pipeline.usecases.spec import Kind
from mlops_pipeline.usecases.vocabulary import Cadence, partition_from_key, partition_key

if TYPE_CHECKING:
    from mlops_pipeline.usecases.spec import UseCaseSpec

InputKind = Literal["category", "bool", "number"]
# Metrics per segment that are logged and shown on the model card, per task type.
SEGMENT_KEY_METRICS = {
    True: ("roc_auc", "pr_auc", "brier", "f1"),
    False: ("rmse", "mae", "r2"),
}


class TrainingDataError(PermanentFailure, ValueError):
    """The training data cannot produce a trustworthy model: deterministic, do not retry."""


def input_kinds(spec: UseCaseSpec) -> dict[str, InputKind]:
    """Each model input (``spec.model_features``, in order) -> how the model reads it."""
    kinds: dict[str, InputKind] = {}
    for name in spec.feature_columns:
        kind = spec.column(name).kind
        kinds[name] = (
            "category" if kind is Kind.CATEGORY else "bool" if kind is Kind.BOOL else "number"
        )
    for declared in spec.features.on_demand.values():
        for name, output_kind in declared.outputs.items():
            kinds[name] = (
                "category"
                if output_kind == "category"
                else "bool"
                if output_kind == "bool"
                else "number"
            )
    return kinds


def categorical_inputs(spec: UseCaseSpec) -> list[str]:
    return [name for name, kind in input_kinds(spec).items() if kind == "category"]


@dataclass
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    # The partitions of each part, each named by its start (the cadence's partition_of).
    train_partitions: list[dt.date]
    validation_partitions: list[dt.date]
    test_partitions: list[dt.date]
    partition_length: dt.timedelta = dt.timedelta(days=1)

    def windows(self) -> dict[str, str]:
        """First..last day (hourly: hour) of each part (a weekly partition ends six days after
        its name)."""
        last = self.partition_length - min(self.partition_length, dt.timedelta(days=1))

        def span(partitions: list[dt.date]) -> str:
            return f"{partition_key(partitions[0])}..{partition_key(partitions[-1] + last)}"

        return {
            "train": span(self.train_partitions),
            "validation": span(self.validation_partitions),
            "test": span(self.test_partitions),
        }


def split_by_time(spec: UseCaseSpec, frame: pd.DataFrame) -> Split:
    """Whole partitions, in order: the last ``test_partitions`` test, the
    ``validation_partitions`` before them validate, all earlier ones train. No partition is in
    two parts."""
    declared = spec.training.split
    # Keys, not dates: pandas would turn hourly partitions (datetimes) into numpy values.
    cadence = spec.cadence
    timestamps = frame[spec.timestamp]
    moments = timestamps.dt.floor("h") if cadence is Cadence.HOURLY else timestamps.dt.date
    partition_of_row = moments.map(cadence.key)
    keys = sorted(partition_of_row.unique())  # keys sort in time order
    partitions = [partition_from_key(key) for key in keys]
    needed = declared.partitions_needed
    if len(partitions) < needed:
        raise TrainingDataError(
            f"{len(partitions)} {spec.cadence.value} partition(s) of data; a time split needs "
            f"at least {needed} ({declared.validation_partitions} validation + "
            f"{declared.test_partitions} test + {declared.min_train_partitions} train)"
        )
    held_out = declared.validation_partitions + declared.test_partitions
    test = partitions[-declared.test_partitions :]
    validation = partitions[-held_out : -declared.test_partitions]
    train = partitions[:-held_out]
    parts = {
        name: frame.loc[
            partition_of_row.isin({partition_key(p) for p in part}).to_numpy()
        ].reset_index(drop=True)
        for name, part in (("train", train), ("validation", validation), ("test", test))
    }
    minimum = spec.training.min_train_rows
    if len(parts["train"]) < minimum:
        raise TrainingDataError(
            f"{len(parts['train'])} training rows, fewer than the minimum {minimum} "
            "(training.min_train_rows)"
        )
    for name, part in parts.items():
        labels = part[spec.label]
        if labels.isna().any():
            raise TrainingDataError(
                f"the {name} window has {int(labels.isna().sum())} row(s) without a label "
                f"({spec.label!r})"
            )
        if labels.nunique() < 2:
            what = "label class" if spec.is_classifier else "label value"
            raise TrainingDataError(
                f"the {name} window has a single {what} ({labels.iloc[0]!r} in "
                f"{spec.label!r}): a model cannot be trained or evaluated on it"
            )
    return Split(
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        train_partitions=list(train),
        validation_partitions=list(validation),
        test_partitions=list(test),
        partition_length=spec.cadence.length,
    )


def model_inputs(spec: UseCaseSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns (``spec.model_features``), typed as the signature declares
    them: categories str, bools bool, numbers float64."""
    kinds = input_kinds(spec)
    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        raise TrainingDataError(f"the frame has no model input(s) {missing}")
    inputs = frame[list(kinds)].copy()
    for name, kind in kinds.items():
        if kind == "category":
            inputs[name] = inputs[name].astype(str)
        elif kind == "bool":
            inputs[name] = inputs[name].astype(bool)
        else:
            inputs[name] = inputs[name].astype("float64")
    return inputs


def labels_of(spec: UseCaseSpec, frame: pd.DataFrame) -> np.ndarray:
    """The label as the model learns it: 0/1 ints for a classifier, floats for a regressor."""
    values = frame[spec.label]
    return (
        values.astype(np.int64).to_numpy()
        if spec.is_classifier
        else values.astype("float64").to_numpy()
    )


def _categories(spec: UseCaseSpec, train: pd.DataFrame) -> list[list[str]]:
    """Each category input's categories: its declared values, else those seen in training."""
    categories = []
    for name in categorical_inputs(spec):
        declared = spec.columns[name].values if name in spec.columns else None
        if declared is not None:
            categories.append(list(declared))
        else:
            categories.append(sorted(train[name].dropna().astype(str).unique()))
    return categories


def _estimator(spec: UseCaseSpec, categorical: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    declared = spec.training.model
    family = HistGradientBoostingClassifier if spec.is_classifier else HistGradientBoostingRegressor
    known = set(family().get_params())
    fixed = {"categorical_features", "random_state", "class_weight"}
    unknown = sorted(set(declared.params) - known) + sorted(set(declared.params) & fixed)
    if unknown:
        raise SpecError(
            f"training.model.params: {unknown} are not settable parameters of "
            f"{family.__name__} (the platform sets categorical_features, random_state and, "
            "for classifiers, class_weight)"
        )
    structural: dict[str, Any] = {
        "categorical_features": list(range(categorical)),
        "random_state": declared.seed,
    }
    if spec.is_classifier:
        # The positive class is usually a minority: weight it up, then calibrate back.
        structural["class_weight"] = "balanced"
    return family(**{"early_stopping": False, **declared.params, **structural})


def build_pipeline(spec: UseCaseSpec, train: pd.DataFrame) -> Any:
    """Ordinal encoding of the category inputs (unknown values read as missing), then the
    declared family's trees on the encoded categories and the numbers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    categorical = categorical_inputs(spec)
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(
                    categories=_categories(spec, train),
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                ),
                categorical,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    return Pipeline([("encode", encode), ("model", _estimator(spec, len(categorical)))])


def base_pipeline(model: Any) -> Any:
    """The fitted encoding + trees pipeline inside a (possibly calibrated) model."""
    calibrated = getattr(model, "calibrated_classifiers_", None)
    if calibrated:
        estimator = calibrated[0].estimator
        return getattr(estimator, "estimator", estimator)  # inside a FrozenEstimator
    return model


def predict_scores(spec: UseCaseSpec, model: Any, inputs: pd.DataFrame) -> np.ndarray:
    """Positive-class probabilities of a classifier, predicted values of a regressor."""
    if spec.is_classifier:
        return np.asarray(model.predict_proba(inputs))[:, 1]
    return np.asarray(model.predict(inputs), dtype="float64")


@dataclass
class TrainedModel:
    spec: UseCaseSpec
    # Classifier: predict_proba on ``model_inputs`` frames; regressor: predict.
    model: Any
    threshold: float | None  # None for a regressor
    split: Split
    metrics: dict[str, float] = field(default_factory=dict)
    segment_metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The probability cut that maximises F1 on the validation partitions (ties: the lower
    cut)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    with np.errstate(invalid="ignore", divide="ignore"):
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


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": float(np.sqrt(mean_squared_error(labels, predictions))),
        "mae": float(mean_absolute_error(labels, predictions)),
        "r2": float(r2_score(labels, predictions)),
        "label_mean": float(np.mean(labels)),
        "rows": float(len(labels)),
    }


def evaluation_metrics(
    spec: UseCaseSpec, labels: np.ndarray, scores: np.ndarray, threshold: float | None
) -> dict[str, float]:
    """The task's metrics: a classifier's on probabilities and its threshold, a regressor's
    on predictions (``threshold`` None)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype="float64")
    if spec.is_classifier:
        if threshold is None:
            raise ValueError(f"{spec.name}: a classifier is evaluated at a threshold")
        return classification_metrics(labels.astype(np.int64), scores, threshold)
    return regression_metrics(labels.astype("float64"), scores)


def segment_metrics(
    spec: UseCaseSpec, frame: pd.DataFrame, scores: np.ndarray, threshold: float | None
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each declared segment column; a segment whose labels take a single
    value (one class, or a constant) gets no metrics."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    labels = frame[spec.label].to_numpy()
    scores = np.asarray(scores)
    for column in spec.segments:
        result[column] = {}
        values = frame[column].astype(str)
        for value in sorted(values.unique()):
            mask = (values == value).to_numpy()
            if len(np.unique(labels[mask])) < 2:
                continue
            result[column][value] = evaluation_metrics(spec, labels[mask], scores[mask], threshold)
    return result


def _fit(pipeline: Any, inputs: pd.DataFrame, labels: np.ndarray) -> None:
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        pipeline.fit(inputs, labels)
    except InvalidParameterError as exc:
        raise SpecError(f"training.model.params: {exc}") from None


def train_model(spec: UseCaseSpec, frame: pd.DataFrame) -> TrainedModel:
    """Split ``frame`` by time, fit the declared model on the train partitions, calibrate and
    choose the threshold on the validation ones (classifiers), and evaluate on the test ones."""
    split = split_by_time(spec, frame)
    pipeline = build_pipeline(spec, split.train)
    _fit(pipeline, model_inputs(spec, split.train), labels_of(spec, split.train))
    model: Any = pipeline
    threshold: float | None = None
    if spec.is_classifier:
        validation = model_inputs(spec, split.validation)
        validation_labels = labels_of(spec, split.validation)
        calibration = spec.training.model.calibration
        if calibration != "none":
            from sklearn.calibration import CalibratedClassifierCV
            from sklearn.frozen import FrozenEstimator

            model = CalibratedClassifierCV(FrozenEstimator(pipeline), method=calibration)
            model.fit(validation, validation_labels)
        threshold = choose_threshold(validation_labels, predict_scores(spec, model, validation))
    test_scores = predict_scores(spec, model, model_inputs(spec, split.test))
    return TrainedModel(
        spec=spec,
        model=model,
        threshold=threshold,
        split=split,
        metrics=evaluation_metrics(spec, labels_of(spec, split.test), test_scores, threshold),
        segment_metrics=segment_metrics(spec, split.test, test_scores, threshold),
    )
