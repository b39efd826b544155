"""The newest night's figures as a Prometheus textfile, for node exporter's textfile
collector (Grafana's drift panels read these gauges)."""

from __future__ import annotations

from pathlib import Path

from mlops_pipeline.config import Settings
from mlops_pipeline.monitoring.records import CHECKED, latest_record


def prometheus_file(settings: Settings) -> Path:
    """The use case's textfile, ``reports/drift/<use case>.prom``: one directory holds every
    use case's file (node exporter's textfile collector reads one directory, not a tree)."""
    return settings.drift_reports_dir.parent / f"{settings.usecase_name}.prom"


def write_prometheus_textfile(settings: Settings) -> Path | None:
    """The newest night's figures, every sample labelled with the registered model, so use
    cases side by side never overwrite each other's series. Written from the newest record, so
    re-running an older night never exports stale figures."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    record = latest_record(settings)
    if record is None or record.status != CHECKED or record.drift is None:
        return None
    model = settings.spec.model_name
    metrics = CollectorRegistry()
    night_ts = settings.spec.cadence.start(record.night).timestamp()
    Gauge(
        "mlops_drift_night_timestamp_seconds",
        "Start of the checked partition (UTC)",
        ["model"],
        registry=metrics,
    ).labels(model=model).set(night_ts)
    Gauge("mlops_drift_share", "Share of features drifting", ["model"], registry=metrics).labels(
        model=model
    ).set(record.drift.drift_share)
    score = Gauge(
        "mlops_drift_column_score",
        "Drift score per feature",
        ["model", "column", "method"],
        registry=metrics,
    )
    drifted = Gauge(
        "mlops_drift_column_drifted",
        "1 when the feature drifts",
        ["model", "column"],
        registry=metrics,
    )
    for column, values in record.drift.columns.items():
        score.labels(model=model, column=column, method=values.method or "").set(values.score)
        drifted.labels(model=model, column=column).set(1 if values.drifted else 0)
    prediction = record.prediction
    if prediction is not None and prediction.score is not None:
        Gauge(
            "mlops_prediction_drift_score",
            "Drift score of the model's score (probability or predicted value)",
            ["model"],
            registry=metrics,
        ).labels(model=model).set(prediction.score)
    performance = record.performance
    if performance is not None and performance.drop is not None:
        Gauge(
            "mlops_champion_performance_drop",
            "How much worse the champion's primary metric is on the partition than at test "
            "time (absolute when higher is better, relative otherwise)",
            ["model", "metric"],
            registry=metrics,
        ).labels(model=model, metric=performance.metric).set(performance.drop)
    Gauge(
        "mlops_retrain_requested",
        "1 when the night requested a retrain",
        ["model"],
        registry=metrics,
    ).labels(model=model).set(1 if record.decision.retrain else 0)
    path = prometheus_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), metrics)  # writes a temporary file and renames it
    return path
