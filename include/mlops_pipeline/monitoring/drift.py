"""What the nightly drift check measures: data drift of the validated features against the
champion's training reference (Evidently ``DataDriftPreset``), prediction drift of the model's
score, and the champion's primary metric on the partition's labelled rows.

Everything about the model comes from its declaration: which columns are features and of what
kind, the drift methods and thresholds (``drift`` section, per-column overrides included), the
primary metric and whether higher is better.

Distances, not p-values, by default: on 20,000-row partitions a Kolmogorov-Smirnov or
chi-squared test flags shifts far too small to matter ("crying wolf"), while a Wasserstein
distance (in reference standard deviations) or a Jensen-Shannon distance does not grow with the
sample.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.usecases.gate_spec import MetricGateSpec
from mlops_pipeline.usecases.spec import UseCaseSpec
from mlops_pipeline.usecases.vocabulary import Cadence, partition_key

# The model's score (probability or predicted value) in the frames Evidently compares.
PREDICTION = "prediction"
# Fewer logged predictions than this for the partition: score it with the champion instead.
MIN_LOGGED_PREDICTIONS = 100


class MonitoringDataError(PermanentFailure, ValueError):
    """The night cannot be checked (no validated data, no reference): deterministic."""


@dataclass(frozen=True)
class DriftConfig:
    """The declaration's ``drift`` section and the features it applies to (no defaults here:
    the spec is the one source)."""

    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    numerical_method: str
    numerical_threshold: float
    categorical_method: str
    categorical_threshold: float
    column_methods: dict[str, str]
    column_thresholds: dict[str, float]
    share_threshold: float

    @classmethod
    def from_spec(cls, spec: UseCaseSpec) -> DriftConfig:
        drift = spec.drift
        return cls(
            numerical=tuple(spec.numeric_features),
            # Booleans drift like categories: two values, compared by their shares.
            categorical=(*spec.categorical_features, *spec.boolean_features),
            numerical_method=drift.numerical_method,
            numerical_threshold=drift.numerical_threshold,
            categorical_method=drift.categorical_method,
            categorical_threshold=drift.categorical_threshold,
            column_methods=dict(drift.column_methods),
            column_thresholds=dict(drift.column_thresholds),
            share_threshold=drift.share_threshold,
        )

    @property
    def features(self) -> tuple[str, ...]:
        """The compared features, in a stable order (numbers, then categories)."""
        return (*self.numerical, *self.categorical)


@dataclass
class DriftResult:
    drift_share: float
    drifted_columns: list[str]
    # column -> {score, method, threshold, drifted}
    columns: dict[str, dict[str, Any]]
    prediction: dict[str, Any]
    rows_current: int
    rows_reference: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def drift_frame(frame: pd.DataFrame, config: DriftConfig) -> pd.DataFrame:
    """The features Evidently compares, typed for speed: categories as ``category`` (value
    counts on object strings cost most of the run), booleans as categories too."""
    missing = [name for name in config.features if name not in frame]
    if missing:
        raise MonitoringDataError(f"drift check: the frame has no feature column(s) {missing}")
    out = pd.DataFrame(index=frame.index)
    for name in config.numerical:
        out[name] = frame[name].astype("float64")
    for name in config.categorical:
        out[name] = frame[name].astype(str).astype("category")
    if PREDICTION in frame:
        out[PREDICTION] = frame[PREDICTION].astype("float64")
    return out.reset_index(drop=True)


@cache
def _preset_class() -> type:
    from evidently.presets import DataDriftPreset

    class DataDriftPresetRenderedOnce(DataDriftPreset):
        """``DataDriftPreset`` with the same metrics (drifted-columns count, one ``ValueDrift``
        per column), whose HTML shows the widgets those metrics already rendered. The stock
        ``render`` recomputes every column's drift twice more, through the legacy
        ``DatasetDriftMetric`` and ``DataDriftTable``, and discards the metrics' widgets (the
        README's drift figures give the saving)."""

        def render(self, context: Any, child_widgets: Any = None) -> list[Any]:
            return [widget for _, widgets in child_widgets or [] for widget in widgets]

    return DataDriftPresetRenderedOnce


def _score_drift(config: DriftConfig) -> Any:
    from evidently.metrics import ValueDrift

    return ValueDrift(
        column=PREDICTION, method=config.numerical_method, threshold=config.numerical_threshold
    )


def build_report(config: DriftConfig, with_prediction: bool) -> Any:
    from evidently import Report

    metrics: list[Any] = [
        _preset_class()(
            columns=list(config.features),
            drift_share=config.share_threshold,
            num_method=config.numerical_method,
            num_threshold=config.numerical_threshold,
            cat_method=config.categorical_method,
            cat_threshold=config.categorical_threshold,
            per_column_method=config.column_methods or None,
            per_column_threshold=config.column_thresholds or None,
        )
    ]
    if with_prediction:
        # The champion's scores, kept out of the feature drift share.
        metrics.append(_score_drift(config))
    return Report(metrics, include_tests=True)


def run_drift(
    reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig
) -> tuple[Any, DriftResult]:
    """Evidently's snapshot (for the HTML report) and the figures read from it."""
    from evidently import DataDefinition, Dataset

    with_prediction = PREDICTION in reference and PREDICTION in current
    numerical = [*config.numerical, *([PREDICTION] if with_prediction else [])]
    definition = DataDefinition(
        numerical_columns=numerical, categorical_columns=list(config.categorical)
    )
    snapshot = build_report(config, with_prediction).run(
        Dataset.from_pandas(drift_frame(current, config), data_definition=definition),
        Dataset.from_pandas(drift_frame(reference, config), data_definition=definition),
    )
    result = read_snapshot(snapshot.dict(), config.features, len(current), len(reference))
    return snapshot, result


def prediction_drift(
    reference: np.ndarray, current: np.ndarray, config: DriftConfig
) -> dict[str, Any]:
    """Drift of the model's score alone (logged predictions are not row-aligned with the
    partition's features, so they get their own small report)."""
    from evidently import DataDefinition, Dataset, Report

    definition = DataDefinition(numerical_columns=[PREDICTION])
    snapshot = Report([_score_drift(config)], include_tests=True).run(
        Dataset.from_pandas(pd.DataFrame({PREDICTION: current}), data_definition=definition),
        Dataset.from_pandas(pd.DataFrame({PREDICTION: reference}), data_definition=definition),
    )
    return read_snapshot(snapshot.dict(), (), len(current), len(reference)).prediction


def read_snapshot(
    payload: dict[str, Any],
    features: tuple[str, ...],
    rows_current: int,
    rows_reference: int,
) -> DriftResult:
    """Per-column score, method, threshold and verdict from an Evidently 0.7 snapshot dict."""
    columns: dict[str, dict[str, Any]] = {}
    share = 0.0
    for metric in payload["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif config["type"].endswith(":ValueDrift"):
            columns[config["column"]] = {
                "score": float(metric["value"]),
                "method": config.get("method"),
                "threshold": config.get("threshold"),
            }
    for test in payload.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift") and params.get("column") in columns:
            columns[params["column"]]["drifted"] = test["status"] == "FAIL"
    prediction = columns.pop(PREDICTION, {})
    drifted = [name for name in features if columns.get(name, {}).get("drifted")]
    return DriftResult(
        drift_share=share,
        drifted_columns=drifted,
        columns=columns,
        prediction=prediction,
        rows_current=rows_current,
        rows_reference=rows_reference,
    )


def read_partition(settings: Settings, partition: dt.date) -> pd.DataFrame:
    """The partition's validated rows (what passed the suite; quarantined rows never count)."""
    import pyarrow.parquet as pq

    folder = storage.partition_dir(settings.lake_dir, partition)
    if not folder.exists():
        raise MonitoringDataError(
            f"no validated partition for {partition_key(partition)} under {settings.lake_dir}: "
            "ingestion rejected it or has not run"
        )
    return pq.read_table(folder).to_pandas()


def with_on_demand_features(spec: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Add the declared on-demand features with the use case's own functions (those of its
    Feast on-demand views), so the champion scores the partition on its training inputs."""
    from mlops_pipeline.features.on_demand import add_on_demand_features

    if not spec.on_demand_features:
        return frame
    columns = {name: frame[name].tolist() for name in spec.feature_columns}
    derived = add_on_demand_features(spec, columns)
    out = frame.copy()
    for name in spec.on_demand_features:
        out[name] = derived[name]
    return out


def logged_predictions(settings: Settings, partition: dt.date, version: str) -> np.ndarray:
    """Scores the model server logged for ``version`` during the partition (every day of a
    weekly one; of an hourly one, its day's lines whose ``ts`` is in the hour); lines still
    being written are skipped."""
    cadence = settings.spec.cadence
    start = cadence.start(partition)
    end, hourly = start + cadence.length, cadence is Cadence.HOURLY
    values: list[float] = []
    for offset in range(max(cadence.length.days, 1)):
        day = (start + dt.timedelta(days=offset)).date()
        folder = settings.predictions_dir / f"date={day.isoformat()}"
        for path in sorted(folder.glob("*.jsonl")) if folder.exists() else []:
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if str(record.get("model_version")) != version or record.get("score") is None:
                    continue
                if hourly and not start <= dt.datetime.fromisoformat(record["ts"]) < end:
                    continue
                values.append(float(record["score"]))
    return np.asarray(values, dtype="float64")


def primary_gate(spec: UseCaseSpec) -> MetricGateSpec:
    """The gate of the primary metric: its direction."""
    (gate,) = [g for g in spec.gate_metrics if g.metric == spec.primary_metric]
    return gate


def degradation(gate: MetricGateSpec, expected: float | None, observed: float) -> float | None:
    """How much worse ``observed`` is than ``expected`` (positive: worse): an absolute drop for
    a metric where higher is better (ROC AUC, R^2), a relative increase for an error metric
    (RMSE, log loss), whose scale is the label's."""
    if expected is None or not np.isfinite(observed):
        return None
    if gate.higher_is_better:
        return float(expected - observed)
    if expected <= 0:
        return None
    return float((observed - expected) / expected)


def performance(
    spec: UseCaseSpec,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float | None,
    expected: dict[str, float],
) -> dict[str, Any]:
    """The champion's primary metric on the partition's labelled rows against its own test
    metrics (``expected``, metric -> value)."""
    from mlops_pipeline.training.model import evaluation_metrics

    gate = primary_gate(spec)
    result: dict[str, Any] = {
        "rows": int(len(labels)),
        "metric": gate.metric,
        "higher_is_better": gate.higher_is_better,
        "value": None,
        "test_value": expected.get(gate.metric),
        "drop": None,
        "metrics": {},
        "test_metrics": dict(expected),
    }
    measurable = len(np.unique(labels)) >= 2 if spec.is_classifier else len(labels) >= 2
    if not measurable:
        return result
    observed = evaluation_metrics(spec, labels, scores, threshold if spec.is_classifier else None)
    value = float(observed[gate.metric])
    result |= {
        "value": value,
        "drop": degradation(gate, expected.get(gate.metric), value),
        "metrics": {k: float(v) for k, v in observed.items()},
    }
    return result


def save_html(snapshot: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    snapshot.save_html(str(tmp))
    tmp.replace(path)
    return path
