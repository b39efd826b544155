"""Score challenger and champion on the same frozen holdout and run the gates.

Works alike for both task types: a classifier is scored by its probabilities at its own
version's threshold, a regressor by its predictions; the metrics, gates, segments and names
all come from the use case's declaration (``settings.spec``). Both versions are loaded as the
model server loads them (``deployment.loading``) and timed with the server's scorer.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.deployment.gates import (
    Check,
    GateConfig,
    evaluate_gates,
    live_shadow_checks,
    with_checks,
)
from mlops_pipeline.deployment.loading import LoadedVersion, load_version
from mlops_pipeline.deployment.records import Evaluation, GateOutcome, Holdout, ModelScore
from mlops_pipeline.deployment.registry import DeploymentError
from mlops_pipeline.usecases.vocabulary import partition_from_key

if TYPE_CHECKING:
    import pandas as pd

    from mlops_pipeline.usecases.spec import UseCaseSpec

LATENCY_CALLS = 200
MLFLOW_TYPES = {"category": "string", "bool": "boolean", "number": "double"}


def serving_schema(spec: UseCaseSpec) -> dict[str, str]:
    """Input column -> MLflow type the serving app sends (``training.model_inputs``)."""
    from mlops_pipeline.training.model import input_kinds

    return {name: MLFLOW_TYPES[kind] for name, kind in input_kinds(spec).items()}


def holdout_window(tracking: Any, run_id: str) -> tuple[dt.date, dt.date]:
    """The challenger's test partitions: labelled, recent, and unseen by the challenger. The
    older champion's training window ended before them, so they are unseen by it too."""
    window = tracking.get_run(run_id).data.params["window_test"]
    start, end = window.split("..")
    return partition_from_key(start), partition_from_key(end)


def score_model(loaded: LoadedVersion, holdout_frame: pd.DataFrame) -> ModelScore:
    """``loaded`` on the holdout: its metrics at its own threshold, per segment and per
    protected attribute, and the latency, size and signature the budgets judge."""
    from threadpoolctl import threadpool_limits

    from mlops_pipeline.deployment.fairness import fairness_by_attribute
    from mlops_pipeline.serving.scorer import scorer_for
    from mlops_pipeline.training.model import evaluation_metrics, model_inputs

    spec, threshold = loaded.spec, loaded.threshold
    scores = loaded.scores(holdout_frame)
    labels = holdout_frame[spec.label].to_numpy()
    metrics = evaluation_metrics(spec, labels, scores, threshold)
    segments = {}
    for column in spec.segments:
        values = holdout_frame[column].astype(str)
        for value in sorted(values.unique()):
            mask = (values == value).to_numpy()
            if len(np.unique(labels[mask])) >= 2:
                segment = evaluation_metrics(spec, labels[mask], scores[mask], threshold)
                segments[f"{column}={value}"] = (int(mask.sum()), segment[spec.primary_metric])
    # Timed as served: the model server's scorer (compiled when exact), one OpenMP thread
    # (`mlops-pipeline serve` sets it; on a busy machine the trees' OpenMP threads otherwise
    # wait on each other for seconds per single-row call).
    scorer = scorer_for(loaded.model, spec)
    one_row = model_inputs(spec, holdout_frame.head(1)).to_dict("list")
    timings = []
    with threadpool_limits(limits=1, user_api="openmp"):
        for _ in range(LATENCY_CALLS):
            started = time.perf_counter()
            scorer.score(one_row)
            timings.append((time.perf_counter() - started) * 1000)
    return ModelScore(
        version=loaded.version,
        run_id=loaded.run_id,
        threshold=threshold,
        metrics=metrics,
        segments=segments,
        p99_latency_ms=float(np.percentile(timings, 99)),
        model_size_mb=loaded.size_mb,
        signature_compatible=dict(loaded.input_schema) == serving_schema(spec),
        fairness=fairness_by_attribute(spec, holdout_frame, labels, scores, threshold),
    )


def gate_config(settings: Settings) -> GateConfig:
    """The gates the use case declares (``gates`` in its ``usecase.yaml``)."""
    return GateConfig.from_spec(settings.spec)


def evaluate_challenger(
    settings: Settings, version: str | None = None, config: GateConfig | None = None
) -> Evaluation:
    """Re-score challenger and champion on the same holdout and run the gates (``config``:
    default ``gate_config(settings)``)."""
    from mlops_pipeline.features.access import build_training_set

    spec = settings.spec
    config = config or gate_config(settings)
    tracking = registry.client(settings)
    name = spec.model_name
    challenger = (
        tracking.get_model_version(name, version)
        if version
        else registry.version_for_alias(tracking, name, registry.CHALLENGER)
    )
    if challenger is None:
        raise DeploymentError(f"{name} has no version {version or '@' + registry.CHALLENGER}")
    champion = registry.version_for_alias(tracking, name, registry.CHAMPION)
    if champion is not None and str(champion.version) == str(challenger.version):
        raise DeploymentError(f"{name} v{challenger.version} is already the champion")
    start, end = holdout_window(tracking, challenger.run_id)
    frame = build_training_set(settings, start, end)
    holdout = Holdout.of(start, end, len(frame.frame), frame.partitions)
    if frame.frame.empty:
        raise DeploymentError(f"{name}: the holdout {start}..{end} holds no rows")
    loaded_challenger = load_version(
        tracking, spec, challenger, None if version else registry.CHALLENGER
    )
    challenger_score = score_model(loaded_challenger, frame.frame)
    loaded_champion = (
        load_version(tracking, spec, champion, registry.CHAMPION) if champion else None
    )
    champion_score = score_model(loaded_champion, frame.frame) if loaded_champion else None
    report = evaluate_gates(
        challenger_score.gate_scores(),
        champion_score.gate_scores() if champion_score else None,
        config,
    )
    shadow: dict[str, Any] | None = None
    live_shadow: dict[str, Any] | None = None
    if loaded_champion is not None:
        checks, shadow, live_shadow = _shadow_evidence(
            settings, challenger, loaded_challenger, loaded_champion, config
        )
        report = with_checks(report, checks)
    return Evaluation(
        model_name=name,
        challenger=challenger_score,
        champion=champion_score,
        holdout=holdout,
        gates=GateOutcome.of(report),
        shadow=shadow,
        live_shadow=live_shadow,
    )


def _shadow_evidence(
    settings: Settings,
    challenger: Any,
    loaded_challenger: LoadedVersion,
    loaded_champion: LoadedVersion,
    config: GateConfig,
) -> tuple[list[Check], dict[str, Any] | None, dict[str, Any] | None]:
    """The challenger beside the champion on real inputs: the newest scored partition (batch
    shadow) and the model server's live shadow log; their gates (off unless declared)."""
    from mlops_pipeline.scoring.batch import Scorer
    from mlops_pipeline.scoring.shadow import flip_share_check, shadow_compare
    from mlops_pipeline.serving.shadow import shadow_summary

    service = (challenger.tags or {}).get(f"{registry.TAG_PREFIX}feature_service")
    comparison = shadow_compare(
        settings,
        Scorer(model=loaded_challenger, feature_service=service or settings.spec.features.service),
    )
    live = shadow_summary(
        settings.shadow_predictions_dir,
        loaded_challenger.version,
        threshold=loaded_champion.threshold,
    )
    checks = live_shadow_checks(live, config)
    flips = flip_share_check(comparison, config.shadow.max_flip_share)
    if flips is not None:
        checks.insert(0, flips)
    return (
        checks,
        comparison.to_dict() if comparison else None,
        live.to_dict() if live.requests or live.errors else None,
    )
