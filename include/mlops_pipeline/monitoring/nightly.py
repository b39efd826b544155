"""The nightly check end to end, and the decision whether to retrain.

A night checks the last completed partition of the use case's cadence. It is *drifted* when
the share of drifting features or the degradation of the champion's primary metric on the
partition's labelled rows crosses its threshold. Retraining is requested only when the change
is real: at least k of the last n partitions drifted (persistence, not a one-night blip), the
partition is big enough to judge (small ones are reported, never acted on), and no retrain was
requested within the cooldown (in partitions). A hard performance drop skips persistence and
cooldown. Every threshold is the declaration's ``drift`` section.

Every night leaves a record under ``reports/drift/<use case>/night=YYYY-MM-DD/`` (JSON summary
and Evidently HTML report), keyed by the checked partition, so re-running a night replaces it
and the k-of-n logic reads the same records whatever order nights ran in.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.deployment import registry
from mlops_pipeline.usecases.spec import UseCaseSpec

SUMMARY = "summary.json"
REPORT = "report.html"
NO_CHAMPION = "no champion"
CHECKED = "checked"


@dataclass(frozen=True)
class RetrainPolicy:
    """The declaration's retrain policy (``drift`` section), counted in partitions."""

    drift_share_threshold: float
    performance_metric: str
    performance_drop_threshold: float
    hard_drop_threshold: float
    nights_required: int
    nights_window: int
    min_partition_rows: int
    cooldown_partitions: int
    partition_days: int

    @classmethod
    def from_spec(cls, spec: UseCaseSpec) -> RetrainPolicy:
        drift = spec.drift
        return cls(
            drift_share_threshold=drift.share_threshold,
            performance_metric=spec.primary_metric,
            performance_drop_threshold=drift.performance_drop_threshold,
            hard_drop_threshold=drift.hard_drop_threshold,
            nights_required=drift.nights_required,
            nights_window=drift.nights_window,
            min_partition_rows=drift.min_partition_rows,
            cooldown_partitions=drift.cooldown_partitions,
            partition_days=spec.cadence.length.days,
        )

    def partitions_back(self, night: dt.date, count: int) -> list[dt.date]:
        """``night`` and the ``count - 1`` partitions before it, newest first."""
        return [night - dt.timedelta(days=self.partition_days * i) for i in range(count)]

    def partitions_between(self, earlier: dt.date, later: dt.date) -> int:
        return (later - earlier).days // self.partition_days

    @property
    def lookback_partitions(self) -> int:
        return max(self.nights_window - 1, self.cooldown_partitions)


@dataclass
class NightFlags:
    """What one night measured, reduced to what the decision needs. ``performance_drop`` is
    how much worse the primary metric is than at test time (see ``drift.degradation``)."""

    rows: int
    drift_share: float
    drifted_columns: list[str] = field(default_factory=list)
    performance_drop: float | None = None

    def data_drift(self, policy: RetrainPolicy) -> bool:
        return self.drift_share >= policy.drift_share_threshold

    def performance_dropped(self, policy: RetrainPolicy) -> bool:
        drop = self.performance_drop
        return drop is not None and drop >= policy.performance_drop_threshold

    def hard_drop(self, policy: RetrainPolicy) -> bool:
        drop = self.performance_drop
        return drop is not None and drop >= policy.hard_drop_threshold

    def counts(self, policy: RetrainPolicy) -> bool:
        """Whether this night counts as drifted towards k of n (small partitions never do)."""
        return self.rows >= policy.min_partition_rows and (
            self.data_drift(policy) or self.performance_dropped(policy)
        )


@dataclass
class Decision:
    retrain: bool
    reasons: list[str]
    drifted: bool
    nights_flagged: list[str] = field(default_factory=list)
    last_request: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    night: dt.date,
    tonight: NightFlags,
    earlier: dict[dt.date, dict[str, Any]],
    policy: RetrainPolicy,
) -> Decision:
    """Whether ``night`` requests a retrain. ``earlier`` maps earlier nights to their records
    (``decision.drifted``, ``decision.retrain``); nights without a record did not drift."""
    drifted = tonight.counts(policy)
    window = policy.partitions_back(night, policy.nights_window)
    flagged = sorted(
        d.isoformat()
        for d in window
        if (d == night and drifted)
        or (d != night and (earlier.get(d) or {}).get("decision", {}).get("drifted"))
    )
    requests = [
        d for d, r in earlier.items() if d < night and (r.get("decision") or {}).get("retrain")
    ]
    last_request = max(requests) if requests else None
    metric = policy.performance_metric
    signals = []
    if tonight.data_drift(policy):
        columns = ", ".join(tonight.drifted_columns) or "-"
        signals.append(
            f"data drift: share {tonight.drift_share:.2f} >= {policy.drift_share_threshold:.2f} "
            f"({columns})"
        )
    if tonight.performance_dropped(policy):
        signals.append(
            f"performance: {metric} {tonight.performance_drop:.3f} worse than the champion's "
            f"test {metric} (threshold {policy.performance_drop_threshold:.3f})"
        )

    def result(retrain: bool, reasons: list[str]) -> Decision:
        return Decision(
            retrain,
            reasons,
            drifted,
            flagged,
            last_request.isoformat() if last_request else None,
        )

    if tonight.rows < policy.min_partition_rows:
        return result(
            False,
            [
                f"partition of {tonight.rows} rows is below the minimum "
                f"{policy.min_partition_rows}: reported, not acted on",
                *signals,
            ],
        )
    if tonight.hard_drop(policy):
        return result(
            True,
            [
                f"hard performance drop: {metric} {tonight.performance_drop:.3f} worse than the "
                f"test {metric} (>= {policy.hard_drop_threshold:.3f}); persistence and cooldown "
                "skipped",
                *signals,
            ],
        )
    if not drifted:
        return result(False, ["no drift over the thresholds"])
    persistence = (
        f"drifted on {len(flagged)} of the last {policy.nights_window} nights "
        f"({policy.nights_required} needed)"
    )
    if len(flagged) < policy.nights_required:
        return result(False, [persistence, *signals])
    if (
        last_request is not None
        and (since := policy.partitions_between(last_request, night)) < policy.cooldown_partitions
    ):
        return result(
            False,
            [
                f"cooldown: retrain requested on {last_request.isoformat()}, "
                f"{since} partition(s) ago (cooldown {policy.cooldown_partitions})",
                persistence,
                *signals,
            ],
        )
    return result(True, [*signals, persistence])


# ---- night records -------------------------------------------------------------------------


def night_dir(settings: Settings, night: dt.date) -> Path:
    return settings.drift_reports_dir / f"night={night.isoformat()}"


def read_record(settings: Settings, night: dt.date) -> dict[str, Any] | None:
    path = night_dir(settings, night) / SUMMARY
    return json.loads(path.read_text()) if path.exists() else None


def earlier_records(
    settings: Settings, night: dt.date, policy: RetrainPolicy
) -> dict[dt.date, dict[str, Any]]:
    records = {}
    for partition in policy.partitions_back(night, policy.lookback_partitions + 1)[1:]:
        record = read_record(settings, partition)
        if record is not None:
            records[partition] = record
    return records


def recorded_nights(settings: Settings) -> list[dt.date]:
    root = settings.drift_reports_dir
    if not root.exists():
        return []
    return sorted(
        dt.date.fromisoformat(p.parent.name.removeprefix("night="))
        for p in root.glob(f"night=*/{SUMMARY}")
    )


def latest_nights(settings: Settings, limit: int = 7) -> list[dict[str, Any]]:
    """The newest night records, newest first, reduced for ``status``."""
    rows = []
    for night in reversed(recorded_nights(settings)[-limit:]):
        record = read_record(settings, night) or {}
        decision = record.get("decision") or {}
        performance = record.get("performance") or {}
        rows.append(
            {
                "night": night.isoformat(),
                "status": record.get("status"),
                "champion_version": (record.get("champion") or {}).get("version"),
                "rows": record.get("rows"),
                "drift_share": (record.get("drift") or {}).get("drift_share"),
                "drifted_columns": (record.get("drift") or {}).get("drifted_columns"),
                "performance_metric": performance.get("metric"),
                "performance_drop": performance.get("drop"),
                "retrain": decision.get("retrain"),
                "reasons": decision.get("reasons"),
            }
        )
    return rows


def prometheus_file(settings: Settings) -> Path:
    """The use case's textfile, ``reports/drift/<use case>.prom``: one directory holds every
    use case's file (node exporter's textfile collector reads one directory, not a tree)."""
    return settings.drift_reports_dir.parent / f"{settings.usecase_name}.prom"


def write_prometheus_textfile(settings: Settings) -> Path | None:
    """The newest night's figures as a Prometheus textfile, every sample labelled with the
    registered model, so use cases side by side never overwrite each other's series. Written
    from the newest record, so re-running an older night never exports stale figures."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    nights = recorded_nights(settings)
    record = read_record(settings, nights[-1]) if nights else None
    if record is None or record.get("status") != CHECKED:
        return None
    model = settings.spec.model_name
    metrics = CollectorRegistry()
    night_ts = dt.datetime.combine(
        dt.date.fromisoformat(record["night"]), dt.time(), tzinfo=dt.UTC
    ).timestamp()
    Gauge(
        "mlops_drift_night_timestamp_seconds",
        "Checked partition (UTC midnight of its first day)",
        ["model"],
        registry=metrics,
    ).labels(model=model).set(night_ts)
    Gauge("mlops_drift_share", "Share of features drifting", ["model"], registry=metrics).labels(
        model=model
    ).set(record["drift"]["drift_share"])
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
    for column, values in record["drift"]["columns"].items():
        score.labels(model=model, column=column, method=values.get("method") or "").set(
            values["score"]
        )
        drifted.labels(model=model, column=column).set(1 if values.get("drifted") else 0)
    prediction = record.get("prediction") or {}
    if prediction.get("score") is not None:
        Gauge(
            "mlops_prediction_drift_score",
            "Drift score of the model's score (probability or predicted value)",
            ["model"],
            registry=metrics,
        ).labels(model=model).set(prediction["score"])
    performance = record.get("performance") or {}
    if performance.get("drop") is not None:
        Gauge(
            "mlops_champion_performance_drop",
            "How much worse the champion's primary metric is on the partition than at test "
            "time (absolute when higher is better, relative otherwise)",
            ["model", "metric"],
            registry=metrics,
        ).labels(model=model, metric=performance["metric"]).set(performance["drop"])
    Gauge(
        "mlops_retrain_requested",
        "1 when the night requested a retrain",
        ["model"],
        registry=metrics,
    ).labels(model=model).set(1 if record["decision"]["retrain"] else 0)
    path = prometheus_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), metrics)  # writes a temporary file and renames it
    return path


# ---- the nightly check ---------------------------------------------------------------------


@dataclass
class Champion:
    version: str
    run_id: str
    threshold: float | None  # None for a regressor
    test_metrics: dict[str, float]
    model: Any  # the fitted scikit-learn pipeline
    spec: Any

    def predict(self, frame: Any) -> Any:
        """The model's score of every row: a classifier's positive-class probability, a
        regressor's predicted value."""
        from mlops_pipeline.training.model import model_inputs, predict_scores

        return predict_scores(self.spec, self.model, model_inputs(self.spec, frame))


def load_champion(settings: Settings, tracking: Any) -> Champion | None:
    import mlflow

    from mlops_pipeline.monitoring.drift import MonitoringDataError

    spec = settings.spec
    name, tag = spec.model_name, registry.TAG_PREFIX
    version = registry.version_for_alias(tracking, name, registry.CHAMPION)
    if version is None:
        return None
    model = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    metrics = tracking.get_run(version.run_id).data.metrics
    threshold = None
    if spec.is_classifier:
        threshold = metrics.get("threshold", (version.tags or {}).get(f"{tag}threshold"))
        if threshold is None:
            raise MonitoringDataError(
                f"champion v{version.version} of {name} records no decision threshold (run "
                f"metric `threshold` or version tag `{tag}threshold`)"
            )
        threshold = float(threshold)
    return Champion(
        version=str(version.version),
        run_id=version.run_id,
        threshold=threshold,
        test_metrics={
            key.removeprefix("test_"): value
            for key, value in metrics.items()
            if key.startswith("test_")
        },
        model=model,
        spec=spec,
    )


def reference_frame(settings: Settings, tracking: Any, champion: Champion) -> Any:
    """The champion's training reference with its own scores, cached per version (the
    reference never changes for a version, and scoring it nightly would waste a second)."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from mlops_pipeline.monitoring.drift import PREDICTION, MonitoringDataError

    cache = settings.drift_reports_dir / "references" / f"v{champion.version}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    try:
        local = tracking.download_artifacts(champion.run_id, "reference/reference.parquet")
    except (MlflowException, OSError) as exc:
        raise MonitoringDataError(
            f"champion v{champion.version} (run {champion.run_id}) has no training reference "
            f"`reference/reference.parquet`: {exc}"
        ) from exc
    frame = pd.read_parquet(local)
    frame[PREDICTION] = champion.predict(frame)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(cache)
    return frame


def run_nightly_check(
    settings: Settings, night: dt.date, airflow: dict[str, str] | None = None
) -> dict[str, Any]:
    """Check the partition ``night`` (a completed one of the use case's cadence) against the
    champion; write, log and export its record and return it. Raises ``MonitoringDataError``
    when the partition cannot be checked and ``registry.TrackingUnavailable`` when MLflow does
    not answer (worth a retry)."""
    import numpy as np

    from mlops_pipeline.monitoring import drift

    spec = settings.spec
    night = spec.cadence.partition_of(night)
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    tracking = registry.client(settings)
    policy = RetrainPolicy.from_spec(spec)
    current = drift.read_partition(settings, night)
    champion = load_champion(settings, tracking)
    record: dict[str, Any] = {
        "usecase": spec.name,
        "model_name": spec.model_name,
        "night": night.isoformat(),
        "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": len(current),
        "airflow": airflow or {},
        "policy": asdict(policy),
    }
    if champion is None:
        record |= {
            "status": NO_CHAMPION,
            "decision": Decision(False, ["no champion to monitor yet"], False).to_dict(),
        }
        _write_record(settings, night, record)
        return record
    reference = reference_frame(settings, tracking, champion)
    timings["load"] = time.perf_counter() - mark

    mark = time.perf_counter()
    scored = champion.predict(drift.with_on_demand_features(spec, current))
    logged = drift.logged_predictions(settings, night, champion.version)
    source = "prediction log" if len(logged) >= drift.MIN_LOGGED_PREDICTIONS else "batch scoring"
    current_predictions = logged if source == "prediction log" else scored
    performance = drift.performance(
        spec,
        current[spec.label].to_numpy(),
        scored,
        champion.threshold,
        champion.test_metrics,
    )
    timings["score"] = time.perf_counter() - mark

    mark = time.perf_counter()
    config = drift.DriftConfig.from_spec(spec)
    features = current[list(config.features)]
    if source == "batch scoring":
        features = features.assign(**{drift.PREDICTION: current_predictions})
        snapshot, result = drift.run_drift(reference, features, config)
    else:
        # Logged predictions are not row-aligned with the partition's rows: two reports.
        without = reference.drop(columns=drift.PREDICTION)
        snapshot, result = drift.run_drift(without, features, config)
        result.prediction = drift.prediction_drift(
            reference[drift.PREDICTION].to_numpy(), current_predictions, config
        )
    timings["evidently"] = time.perf_counter() - mark

    mark = time.perf_counter()
    flags = NightFlags(
        rows=len(current),
        drift_share=result.drift_share,
        drifted_columns=result.drifted_columns,
        performance_drop=performance["drop"],
    )
    decision = decide(night, flags, earlier_records(settings, night, policy), policy)
    folder = night_dir(settings, night)
    html = drift.save_html(snapshot, folder / REPORT)
    record |= {
        "status": CHECKED,
        "champion": {"version": champion.version, "run_id": champion.run_id},
        "drift": {k: v for k, v in result.to_dict().items() if k != "prediction"},
        "prediction": {
            **result.prediction,
            "source": source,
            "rows": int(len(current_predictions)),
            "mean_current": float(np.mean(current_predictions)),
            "mean_reference": float(reference[drift.PREDICTION].mean()),
        },
        "performance": performance,
        "decision": decision.to_dict(),
        "report_html": str(html),
    }
    record["mlflow_run_id"] = _log_to_mlflow(settings, tracking, record, html)
    timings["report_and_log"] = time.perf_counter() - mark
    record["timings"] = {k: round(v, 3) for k, v in timings.items()}
    _write_record(settings, night, record)
    return record


def _write_record(settings: Settings, night: dt.date, record: dict[str, Any]) -> None:
    storage.write_json(night_dir(settings, night) / SUMMARY, record)
    write_prometheus_textfile(settings)


def _log_to_mlflow(settings: Settings, tracking: Any, record: dict[str, Any], html: Path) -> str:
    """One MLflow run per night in the use case's monitoring experiment; a re-run of the night
    replaces the night's earlier run."""
    experiment = registry.experiment_id(tracking, settings, settings.spec.monitoring_experiment)
    tag = f"{registry.TAG_PREFIX}night"
    for old in tracking.search_runs([experiment], f"tags.`{tag}` = '{record['night']}'"):
        tracking.delete_run(old.info.run_id)
    run = tracking.create_run(
        experiment,
        run_name=f"drift-{record['night']}",
        tags={
            tag: record["night"],
            f"{registry.TAG_PREFIX}usecase": record["usecase"],
            f"{registry.TAG_PREFIX}champion_version": record["champion"]["version"],
            f"{registry.TAG_PREFIX}retrain": str(record["decision"]["retrain"]).lower(),
            f"{registry.TAG_PREFIX}airflow_run_id": record["airflow"].get("run_id", "none"),
        },
    )
    run_id = run.info.run_id
    performance = record["performance"]
    metrics = {
        "drift_share": record["drift"]["drift_share"],
        "rows": float(record["rows"]),
        "retrain": 1.0 if record["decision"]["retrain"] else 0.0,
        **{f"drift_{c}": v["score"] for c, v in record["drift"]["columns"].items()},
        **{k: v for k, v in (performance.get("metrics") or {}).items() if k != "rows"},
    }
    if record["prediction"].get("score") is not None:
        metrics["prediction_drift"] = record["prediction"]["score"]
    if performance.get("drop") is not None:
        metrics[f"{performance['metric']}_drop"] = performance["drop"]
    from mlflow.entities import Metric, Param

    stamp = int(time.time() * 1000)
    tracking.log_batch(
        run_id,
        metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
        params=[
            Param("night", record["night"]),
            Param("champion_version", record["champion"]["version"]),
        ],
    )
    summary = html.with_name(SUMMARY)
    storage.write_json(summary, record)
    tracking.log_artifact(run_id, str(html), "drift")
    tracking.log_artifact(run_id, str(summary), "drift")
    tracking.set_terminated(run_id)
    return run_id
