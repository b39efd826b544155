"""The nightly check end to end, and the decision whether to retrain.

A night is *drifted* when the share of drifting features or the champion's ROC AUC drop on the
day's labelled rows crosses its threshold. Retraining is requested only when the change is
real: at least k of the last n nights drifted (persistence, not a one-night blip), the batch is
big enough to judge (small batches are reported, never acted on), and no retrain was requested
within the cooldown. A hard performance drop skips persistence and cooldown.

Every night leaves a record under ``MLOPS_HOME/reports/drift/night=YYYY-MM-DD/`` (JSON summary
and Evidently HTML report), keyed by the checked day, so re-running a night replaces it and the
k-of-n logic reads the same records whatever order nights ran in.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.data import contract, storage
from mlops_pipeline.deployment import registry

MONITORING_EXPERIMENT = "monitoring"
SUMMARY = "summary.json"
REPORT = "report.html"
PROMETHEUS_FILE = "drift.prom"
NO_CHAMPION = "no champion"
CHECKED = "checked"


@dataclass(frozen=True)
class RetrainPolicy:
    drift_share_threshold: float = 0.2
    performance_drop_threshold: float = 0.05
    hard_drop_threshold: float = 0.1
    nights_required: int = 2
    nights_window: int = 3
    min_batch_rows: int = 1_000
    cooldown_days: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrainPolicy:
        return cls(
            drift_share_threshold=settings.drift_share_threshold,
            performance_drop_threshold=settings.performance_drop_threshold,
            hard_drop_threshold=settings.performance_hard_drop_threshold,
            nights_required=settings.drift_nights_required,
            nights_window=settings.drift_nights_window,
            min_batch_rows=settings.drift_min_batch_rows,
            cooldown_days=settings.retrain_cooldown_days,
        )

    @property
    def lookback_days(self) -> int:
        return max(self.nights_window - 1, self.cooldown_days)


@dataclass
class NightFlags:
    """What one night measured, reduced to what the decision needs."""

    rows: int
    drift_share: float
    drifted_columns: list[str] = field(default_factory=list)
    roc_auc_drop: float | None = None

    def data_drift(self, policy: RetrainPolicy) -> bool:
        return self.drift_share >= policy.drift_share_threshold

    def performance_drop(self, policy: RetrainPolicy) -> bool:
        drop = self.roc_auc_drop
        return drop is not None and drop >= policy.performance_drop_threshold

    def hard_drop(self, policy: RetrainPolicy) -> bool:
        return self.roc_auc_drop is not None and self.roc_auc_drop >= policy.hard_drop_threshold

    def counts(self, policy: RetrainPolicy) -> bool:
        """Whether this night counts as drifted towards k of n (small batches never do)."""
        return self.rows >= policy.min_batch_rows and (
            self.data_drift(policy) or self.performance_drop(policy)
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
    window = [night - dt.timedelta(days=i) for i in range(policy.nights_window)]
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
    signals = []
    if tonight.data_drift(policy):
        columns = ", ".join(tonight.drifted_columns) or "-"
        signals.append(
            f"data drift: share {tonight.drift_share:.2f} >= {policy.drift_share_threshold:.2f} "
            f"({columns})"
        )
    if tonight.performance_drop(policy):
        signals.append(
            f"performance: ROC AUC {tonight.roc_auc_drop:.3f} below the champion's test ROC AUC "
            f"(threshold {policy.performance_drop_threshold:.3f})"
        )

    def result(retrain: bool, reasons: list[str]) -> Decision:
        return Decision(
            retrain,
            reasons,
            drifted,
            flagged,
            last_request.isoformat() if last_request else None,
        )

    if tonight.rows < policy.min_batch_rows:
        return result(
            False,
            [
                f"batch of {tonight.rows} rows is below the minimum {policy.min_batch_rows}: "
                "reported, not acted on",
                *signals,
            ],
        )
    if tonight.hard_drop(policy):
        return result(
            True,
            [
                f"hard performance drop: ROC AUC {tonight.roc_auc_drop:.3f} below the test ROC "
                f"AUC (>= {policy.hard_drop_threshold:.3f}); persistence and cooldown skipped",
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
    if last_request is not None and (night - last_request).days < policy.cooldown_days:
        return result(
            False,
            [
                f"cooldown: retrain requested on {last_request.isoformat()}, "
                f"{(night - last_request).days} day(s) ago (cooldown {policy.cooldown_days})",
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
    settings: Settings, night: dt.date, lookback_days: int
) -> dict[dt.date, dict[str, Any]]:
    records = {}
    for offset in range(1, lookback_days + 1):
        day = night - dt.timedelta(days=offset)
        record = read_record(settings, day)
        if record is not None:
            records[day] = record
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
        rows.append(
            {
                "night": night.isoformat(),
                "status": record.get("status"),
                "champion_version": (record.get("champion") or {}).get("version"),
                "rows": record.get("rows"),
                "drift_share": (record.get("drift") or {}).get("drift_share"),
                "drifted_columns": (record.get("drift") or {}).get("drifted_columns"),
                "roc_auc_drop": (record.get("performance") or {}).get("roc_auc_drop"),
                "retrain": decision.get("retrain"),
                "reasons": decision.get("reasons"),
            }
        )
    return rows


def write_prometheus_textfile(settings: Settings) -> Path | None:
    """The newest night's figures as a Prometheus textfile (node exporter's textfile
    collector, or any scraper of ``reports/drift/*.prom``). Written from the newest record, so
    re-running an older night never exports stale figures."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    nights = recorded_nights(settings)
    record = read_record(settings, nights[-1]) if nights else None
    if record is None or record.get("status") != CHECKED:
        return None
    metrics = CollectorRegistry()
    night_ts = dt.datetime.combine(
        dt.date.fromisoformat(record["night"]), dt.time(), tzinfo=dt.UTC
    ).timestamp()
    Gauge(
        "mlops_drift_night_timestamp_seconds", "Checked day (UTC midnight)", registry=metrics
    ).set(night_ts)
    Gauge("mlops_drift_share", "Share of features drifting", registry=metrics).set(
        record["drift"]["drift_share"]
    )
    score = Gauge(
        "mlops_drift_column_score",
        "Drift score per feature",
        ["column", "method"],
        registry=metrics,
    )
    drifted = Gauge(
        "mlops_drift_column_drifted", "1 when the feature drifts", ["column"], registry=metrics
    )
    for column, values in record["drift"]["columns"].items():
        score.labels(column=column, method=values.get("method") or "").set(values["score"])
        drifted.labels(column=column).set(1 if values.get("drifted") else 0)
    prediction = record.get("prediction") or {}
    if prediction.get("score") is not None:
        Gauge(
            "mlops_prediction_drift_score", "Drift score of the churn probability", registry=metrics
        ).set(prediction["score"])
    drop = (record.get("performance") or {}).get("roc_auc_drop")
    if drop is not None:
        Gauge(
            "mlops_champion_roc_auc_drop",
            "Champion test ROC AUC minus ROC AUC on the day",
            registry=metrics,
        ).set(drop)
    Gauge("mlops_retrain_requested", "1 when the night requested a retrain", registry=metrics).set(
        1 if record["decision"]["retrain"] else 0
    )
    path = settings.drift_reports_dir / PROMETHEUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), metrics)  # writes a temporary file and renames it
    return path


# ---- the nightly check ---------------------------------------------------------------------


@dataclass
class Champion:
    version: str
    run_id: str
    threshold: float
    test_metrics: dict[str, float]
    model: Any

    def predict(self, frame: Any) -> Any:
        import numpy as np

        from mlops_pipeline.training.model import model_inputs

        return np.asarray(self.model.predict(model_inputs(frame)))[:, 1]


def load_champion(settings: Settings, tracking: Any) -> Champion | None:
    import mlflow

    name = settings.registered_model_name
    version = registry.version_for_alias(tracking, name, registry.CHAMPION)
    if version is None:
        return None
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    metrics = tracking.get_run(version.run_id).data.metrics
    return Champion(
        version=str(version.version),
        run_id=version.run_id,
        threshold=float(model.metadata.metadata["threshold"]),
        test_metrics={n: metrics[f"test_{n}"] for n in _GATED if f"test_{n}" in metrics},
        model=model,
    )


_GATED = ("roc_auc", "pr_auc", "log_loss", "brier")


def reference_frame(settings: Settings, tracking: Any, champion: Champion) -> Any:
    """The champion's training reference with its own predictions, cached per version (the
    reference never changes for a version, and scoring it nightly would waste a second)."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    name = settings.registered_model_name
    cache = settings.drift_reports_dir / "references" / name / f"v{champion.version}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    from mlops_pipeline.monitoring.drift import PREDICTION, MonitoringDataError

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
    """Check ``night`` (a completed day) against the champion; write, log and export its
    record and return it. Raises ``MonitoringDataError`` when the day cannot be checked and
    ``registry.TrackingUnavailable`` when MLflow does not answer (worth a retry)."""
    import numpy as np

    from mlops_pipeline.monitoring import drift

    timings: dict[str, float] = {}
    mark = time.perf_counter()
    tracking = registry.client(settings)
    policy = RetrainPolicy.from_settings(settings)
    current = drift.read_day(settings, night)
    champion = load_champion(settings, tracking)
    record: dict[str, Any] = {
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
    scored = champion.predict(drift.with_on_demand_features(settings, current))
    logged = drift.logged_predictions(settings, night, champion.version)
    source = "prediction log" if len(logged) >= drift.MIN_LOGGED_PREDICTIONS else "batch scoring"
    current_predictions = logged if source == "prediction log" else scored
    performance = drift.performance(
        current[contract.LABEL].to_numpy(), scored, champion.threshold, champion.test_metrics
    )
    timings["score"] = time.perf_counter() - mark

    mark = time.perf_counter()
    config = drift.DriftConfig.from_settings(settings)
    features = current[list(drift.DRIFT_FEATURES)]
    if source == "batch scoring":
        features = features.assign(**{drift.PREDICTION: current_predictions})
        snapshot, result = drift.run_drift(reference, features, config)
    else:
        # Logged predictions are not row-aligned with the day's rows: two reports.
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
        roc_auc_drop=performance.get("roc_auc_drop"),
    )
    decision = decide(night, flags, earlier_records(settings, night, policy.lookback_days), policy)
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
    """One MLflow run per night in the ``monitoring`` experiment; a re-run of the night
    replaces the night's earlier run."""
    experiment = registry.experiment_id(tracking, settings, MONITORING_EXPERIMENT)
    tag = f"{registry.TAG_PREFIX}night"
    for old in tracking.search_runs([experiment], f"tags.`{tag}` = '{record['night']}'"):
        tracking.delete_run(old.info.run_id)
    run = tracking.create_run(
        experiment,
        run_name=f"drift-{record['night']}",
        tags={
            tag: record["night"],
            f"{registry.TAG_PREFIX}champion_version": record["champion"]["version"],
            f"{registry.TAG_PREFIX}retrain": str(record["decision"]["retrain"]).lower(),
            f"{registry.TAG_PREFIX}airflow_run_id": record["airflow"].get("run_id", "none"),
        },
    )
    run_id = run.info.run_id
    metrics = {
        "drift_share": record["drift"]["drift_share"],
        "rows": float(record["rows"]),
        "retrain": 1.0 if record["decision"]["retrain"] else 0.0,
        **{f"drift_{c}": v["score"] for c, v in record["drift"]["columns"].items()},
    }
    if record["prediction"].get("score") is not None:
        metrics["prediction_drift"] = record["prediction"]["score"]
    for key in ("roc_auc", "roc_auc_drop", "pr_auc", "brier"):
        if record["performance"].get(key) is not None:
            metrics[key] = record["performance"][key]
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
