"""The nightly check end to end: take the champion's scores of the last completed partition of
the use case's cadence (the batch scoring DAG's predictions), measure drift and performance
(``drift``), decide whether to retrain (``policy``), and leave the night's record
(``records``), Prometheus textfile (``textfile``) and MLflow run.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.deployment.loading import LoadedVersion, load_alias
from mlops_pipeline.monitoring.policy import Decision, NightFlags, RetrainPolicy, decide
from mlops_pipeline.monitoring.records import (
    CHECKED,
    NO_CHAMPION,
    REPORT,
    ChampionRef,
    DriftSummary,
    NightRecord,
    Performance,
    PredictionDrift,
    earlier_decisions,
    night_dir,
    write_record,
)
from mlops_pipeline.monitoring.textfile import write_prometheus_textfile
from mlops_pipeline.usecases.vocabulary import partition_key

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def load_champion(settings: Settings, tracking: Any) -> LoadedVersion | None:
    """The version serving now, loaded as the model server loads it; None before the first
    promotion."""
    return load_alias(tracking, settings.spec, registry.CHAMPION)


def reference_frame(settings: Settings, tracking: Any, champion: LoadedVersion) -> pd.DataFrame:
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
    frame[PREDICTION] = champion.scores(frame)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(cache)
    return frame


BATCH_PREDICTIONS = "batch predictions"
INLINE_SCORING = "batch scoring"


def partition_scores(
    settings: Settings, night: dt.date, current: pd.DataFrame, champion: LoadedVersion
) -> tuple[np.ndarray, str]:
    """The champion's score of every row of ``current`` (the partition's validated rows, in
    their order) and where it came from: the partition's batch predictions when this version
    scored every row of it, else scored here. The fallback stays for partitions the scoring
    DAG has not reached (or scored with an earlier champion)."""
    from mlops_pipeline.monitoring import drift
    from mlops_pipeline.scoring.batch import MODEL_VERSION, SCORE, read_predictions

    spec = settings.spec
    predictions = read_predictions(settings, night)
    if predictions is not None and (predictions[MODEL_VERSION] == champion.version).all():
        by_key = predictions.set_index(spec.entity.key)[SCORE]
        aligned = by_key.reindex(current[spec.entity.key].to_numpy())
        if len(by_key) == len(current) and not aligned.isna().any():
            return aligned.to_numpy(dtype="float64"), BATCH_PREDICTIONS
    return champion.scores(drift.with_on_demand_features(spec, current)), INLINE_SCORING


def run_nightly_check(
    settings: Settings, night: dt.date, airflow: dict[str, str] | None = None
) -> NightRecord:
    """Check the partition ``night`` (a completed one of the use case's cadence) against the
    champion; write, log and export its record and return it. Raises ``MonitoringDataError``
    when the partition cannot be checked, ``MissingThreshold`` for a classifier champion
    registered without a threshold and ``registry.TrackingUnavailable`` when MLflow does not
    answer (worth a retry)."""
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
    base = NightRecord(
        usecase=spec.name,
        model_name=spec.model_name,
        night=night,
        checked_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        rows=len(current),
        airflow=airflow or {},
        policy=policy,
        status=NO_CHAMPION,
        decision=Decision(retrain=False, reasons=["no champion to monitor yet"]),
    )
    if champion is None:
        _write(settings, base)
        return base
    reference = reference_frame(settings, tracking, champion)
    timings["load"] = time.perf_counter() - mark

    mark = time.perf_counter()
    scored, scored_source = partition_scores(settings, night, current, champion)
    logged = drift.logged_predictions(settings, night, champion.version)
    source = "prediction log" if len(logged) >= drift.MIN_LOGGED_PREDICTIONS else scored_source
    current_predictions = logged if source == "prediction log" else scored
    performance = Performance.model_validate(
        drift.performance(
            spec,
            current[spec.label].to_numpy(),
            scored,
            champion.threshold,
            dict(champion.test_metrics),
        )
    )
    timings["score"] = time.perf_counter() - mark

    mark = time.perf_counter()
    config = drift.DriftConfig.from_spec(spec)
    features = current[list(config.features)]
    if source != "prediction log":
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
        performance_drop=performance.drop,
    )
    decision = decide(night, flags, earlier_decisions(settings, night, policy), policy)
    html = drift.save_html(snapshot, night_dir(settings, night) / REPORT)
    drift_summary = DriftSummary.model_validate(
        {k: v for k, v in result.to_dict().items() if k != "prediction"}
    )
    prediction = PredictionDrift(
        **result.prediction,
        source=source,
        rows=int(len(current_predictions)),
        mean_current=float(np.mean(current_predictions)),
        mean_reference=float(reference[drift.PREDICTION].mean()),
    )
    record = base.model_copy(
        update={
            "status": CHECKED,
            "champion": ChampionRef(version=champion.version, run_id=champion.run_id),
            "drift": drift_summary,
            "prediction": prediction,
            "performance": performance,
            "decision": decision,
            "report_html": str(html),
        }
    )
    metrics = {
        "drift_share": drift_summary.drift_share,
        "rows": float(record.rows),
        "retrain": 1.0 if decision.retrain else 0.0,
        **{f"drift_{c}": v.score for c, v in drift_summary.columns.items()},
        **{k: v for k, v in performance.metrics.items() if k != "rows"},
    }
    if prediction.score is not None:
        metrics["prediction_drift"] = prediction.score
    if performance.drop is not None:
        metrics[f"{performance.metric}_drop"] = performance.drop
    run_id = _log_to_mlflow(settings, tracking, record, champion.version, metrics, html)
    timings["report_and_log"] = time.perf_counter() - mark
    record = record.model_copy(
        update={"mlflow_run_id": run_id, "timings": {k: round(v, 3) for k, v in timings.items()}}
    )
    _write(settings, record)
    return record


def _write(settings: Settings, record: NightRecord) -> None:
    write_record(settings, record)
    write_prometheus_textfile(settings)


def _log_to_mlflow(
    settings: Settings,
    tracking: Any,
    record: NightRecord,
    champion_version: str,
    metrics: dict[str, float],
    html: Path,
) -> str:
    """One MLflow run per night in the use case's monitoring experiment, with the night's
    ``metrics``, report and record; a re-run of the night replaces the night's earlier run."""
    from mlflow.entities import Metric, Param

    night = partition_key(record.night)
    experiment = registry.experiment_id(tracking, settings, settings.spec.monitoring_experiment)
    tag = f"{registry.TAG_PREFIX}night"
    for old in tracking.search_runs([experiment], f"tags.`{tag}` = '{night}'"):
        tracking.delete_run(old.info.run_id)
    run = tracking.create_run(
        experiment,
        run_name=f"drift-{night}",
        tags={
            tag: night,
            f"{registry.TAG_PREFIX}usecase": settings.spec.name,
            f"{registry.TAG_PREFIX}champion_version": champion_version,
            f"{registry.TAG_PREFIX}retrain": str(record.decision.retrain).lower(),
            f"{registry.TAG_PREFIX}airflow_run_id": record.airflow.get("run_id", "none"),
        },
    )
    run_id: str = run.info.run_id
    stamp = int(time.time() * 1000)
    tracking.log_batch(
        run_id,
        metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
        params=[Param("night", night), Param("champion_version", champion_version)],
    )
    summary = write_record(settings, record)
    tracking.log_artifact(run_id, str(html), "drift")
    tracking.log_artifact(run_id, str(summary), "drift")
    tracking.set_terminated(run_id)
    return run_id
