"""The training task: training set -> model -> MLflow run -> registered ``challenger``.

Order matters for failures: everything is logged to the run first, then the version is
registered, and the ``challenger`` alias moves last. A failure after the version exists
deletes that version, so no alias can point at a half-logged model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.data import contract
from mlops_pipeline.deployment import registry
from mlops_pipeline.features.access import build_training_set
from mlops_pipeline.features.groups import FEATURE_SERVICE, FEATURE_VIEWS
from mlops_pipeline.training.model import TrainingParams, model_inputs, train_model
from mlops_pipeline.training.model_card import (
    card_sections,
    render_html,
    render_markdown,
    shap_summary,
)

log = logging.getLogger(__name__)

# skops loads only types it trusts. These are the scikit-learn internals a calibrated
# HistGradientBoosting pipeline needs beyond skops' defaults; anything else makes logging fail.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]
SERIALIZATION = (
    "skops (MLflow's default for scikit-learn), with explicitly trusted types: "
    + ", ".join(f"`{t}`" for t in SKOPS_TRUSTED_TYPES)
)
REFERENCE_ROWS = 100_000
SHAP_SAMPLE_ROWS = 2_000


@dataclass
class TrainingRequest:
    window_end: dt.date
    window_days: int
    params: TrainingParams = field(default_factory=TrainingParams)
    reason: str = "manual"
    dag_id: str = ""
    run_id: str = ""

    @property
    def window_start(self) -> dt.date:
        return self.window_end - dt.timedelta(days=self.window_days - 1)


@dataclass
class TrainingOutcome:
    model_name: str
    version: str
    run_id: str
    model_uri: str
    threshold: float
    metrics: dict[str, float]
    data_window: str
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def code_version() -> str:
    """The git commit the code runs from (``MLOPS_CODE_VERSION`` wins, for images)."""
    if os.environ.get("MLOPS_CODE_VERSION"):
        return os.environ["MLOPS_CODE_VERSION"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def data_version(partitions: list[dict[str, Any]]) -> str:
    """One digest over the content hashes of the partitions used: the data version."""
    digest = hashlib.sha256()
    for partition in sorted(partitions, key=lambda p: p["date"]):
        digest.update(f"{partition['date']}:{partition.get('content_sha256')}".encode())
    return digest.hexdigest()


def train_and_register(settings: Settings, request: TrainingRequest) -> TrainingOutcome:
    import mlflow
    import mlflow.data
    from mlflow.models import infer_signature

    timings: dict[str, float] = {}
    mark = time.perf_counter()
    tracking = registry.client(settings)  # fails fast (and retryably) when unreachable
    experiment = registry.experiment_id(tracking, settings, registry.TRAINING_EXPERIMENT)
    timings["connect"] = time.perf_counter() - mark

    mark = time.perf_counter()
    training_set = build_training_set(settings, request.window_start, request.window_end)
    timings["training_set"] = time.perf_counter() - mark
    mark = time.perf_counter()
    trained = train_model(training_set.frame, request.params, settings.min_training_rows)
    timings["fit_calibrate_evaluate"] = time.perf_counter() - mark

    window = f"{request.window_start.isoformat()}..{request.window_end.isoformat()}"
    version_of_data = data_version(training_set.partitions)
    tags = {
        f"{registry.TAG_PREFIX}code_version": code_version(),
        f"{registry.TAG_PREFIX}airflow_dag_id": request.dag_id or "none",
        f"{registry.TAG_PREFIX}airflow_run_id": request.run_id or "none",
        f"{registry.TAG_PREFIX}validation_ids": ",".join(
            p.get("validation_id") or "" for p in training_set.partitions
        ),
        f"{registry.TAG_PREFIX}feature_service": FEATURE_SERVICE,
        f"{registry.TAG_PREFIX}feature_views": ",".join(FEATURE_VIEWS),
        f"{registry.TAG_PREFIX}data_window": window,
        f"{registry.TAG_PREFIX}data_window_end": request.window_end.isoformat(),
        f"{registry.TAG_PREFIX}data_version": version_of_data,
        f"{registry.TAG_PREFIX}trigger_reason": request.reason,
        f"{registry.TAG_PREFIX}threshold": f"{trained.threshold:.6f}",
        f"{registry.TAG_PREFIX}serialization": "skops",
    }
    lineage = {
        "feature_service": FEATURE_SERVICE,
        "feature_views": list(FEATURE_VIEWS),
        "data_window": window,
        "data_version": version_of_data,
        "partitions": training_set.partitions,
        "tags": tags,
    }

    with tempfile.TemporaryDirectory(prefix="mlops-train-") as scratch:
        out = Path(scratch)
        mark = time.perf_counter()
        shap = shap_summary(trained, out / "card", SHAP_SAMPLE_ROWS)
        timings["shap"] = time.perf_counter() - mark
        title = f"Model card: {settings.registered_model_name}, data window {window}"
        sections = card_sections(trained, shap, lineage, SERIALIZATION)
        (out / "card" / "model_card.md").write_text(render_markdown(title, sections))
        (out / "card" / "model_card.html").write_text(render_html(title, sections))
        (out / "data_lineage.json").write_text(json.dumps(lineage, indent=2, default=str))
        reference = trained.split.train.sample(
            n=min(REFERENCE_ROWS, len(trained.split.train)), random_state=request.params.seed
        )
        (out / "reference").mkdir()
        reference[
            [contract.EVENT_TIMESTAMP, *model_inputs(reference).columns, contract.LABEL]
        ].to_parquet(out / "reference" / "reference.parquet", index=False)

        mark = time.perf_counter()
        example = model_inputs(trained.split.test.head(5))
        signature = infer_signature(example, trained.model.predict_proba(example))
        with mlflow.start_run(experiment_id=experiment, run_name=f"train-{window}") as run:
            mlflow.set_tags(tags)
            mlflow.log_params(
                {
                    **request.params.to_dict(),
                    "window_days": request.window_days,
                    **{f"window_{k}": v for k, v in trained.split.windows().items()},
                }
            )
            mlflow.log_metrics({f"test_{k}": v for k, v in trained.metrics.items()})
            mlflow.log_metric("threshold", trained.threshold)
            mlflow.log_metrics(
                {
                    f"test_{column}_{value}_{name}": row[name]
                    for column, values in trained.segment_metrics.items()
                    for value, row in values.items()
                    for name in ("roc_auc", "pr_auc", "brier", "f1")
                }
            )
            dataset = mlflow.data.from_pandas(
                training_set.frame,
                source=settings.lake_dir.as_uri(),
                name=f"{FEATURE_SERVICE}:{window}",
                targets=contract.LABEL,
                digest=version_of_data[:32],
            )
            mlflow.log_input(
                dataset,
                context="training",
                # One tag per lake partition: its content hash is that day's data version.
                tags={
                    f"{registry.TAG_PREFIX}partition.{p['date']}": p.get("content_sha256") or ""
                    for p in training_set.partitions
                },
            )
            info = mlflow.sklearn.log_model(
                trained.model,
                name="model",
                signature=signature,
                input_example=example,
                serialization_format="skops",
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
                pyfunc_predict_fn="predict_proba",
                metadata={"threshold": trained.threshold, "feature_service": FEATURE_SERVICE},
            )
            mlflow.log_artifacts(str(out / "card"), artifact_path="model_card")
            mlflow.log_artifacts(str(out / "reference"), artifact_path="reference")
            mlflow.log_artifact(str(out / "data_lineage.json"))
        timings["mlflow_logging"] = time.perf_counter() - mark

    mark = time.perf_counter()
    name = settings.registered_model_name
    if tracking.search_registered_models(f"name='{name}'") == []:
        tracking.create_registered_model(
            name, description="Churn within 30 days, from the churn_model_v1 feature service."
        )
    # The model id too: a tracking server refuses a `models:/m-...` source named by run alone.
    version = tracking.create_model_version(
        name, source=info.model_uri, run_id=run.info.run_id, tags=tags, model_id=info.model_id
    )
    try:
        registry.wait_until_ready(tracking, name, version.version)
        tracking.set_registered_model_alias(name, registry.CHALLENGER, version.version)
    except Exception:
        log.exception("registration of %s v%s failed; deleting the version", name, version.version)
        tracking.delete_model_version(name, version.version)
        raise
    timings["registration"] = time.perf_counter() - mark
    return TrainingOutcome(
        model_name=name,
        version=str(version.version),
        run_id=run.info.run_id,
        model_uri=f"models:/{name}/{version.version}",
        threshold=trained.threshold,
        metrics=trained.metrics,
        data_window=window,
        timings=timings,
    )


@dataclass
class TrainingPlan:
    due: bool
    why: str
    window_end: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FEATURES_REASON = "features"


def plan_training(
    settings: Settings,
    window_end: dt.date,
    reason: str,
    last_window_end: dt.date | None,
    days_available: int | None = None,
    days_needed: int = 0,
) -> TrainingPlan:
    """Whether to train now. Fresh features retrain at most every ``training_cadence_days``
    of data (measured on data windows, not the wall clock, so re-runs decide alike) and only
    once the window holds enough validated days to split; drift and manual requests always
    train (and fail loudly if the data cannot support them)."""
    if reason != FEATURES_REASON:
        return TrainingPlan(True, f"requested: {reason}", window_end.isoformat(), reason)
    if days_available is not None and days_available < days_needed:
        why = f"waiting for data: {days_available} of {days_needed} validated days in the window"
        return TrainingPlan(False, why, window_end.isoformat(), reason)
    if last_window_end is None:
        return TrainingPlan(True, "no trained version yet", window_end.isoformat(), reason)
    moved = (window_end - last_window_end).days
    due = moved >= settings.training_cadence_days
    why = (
        f"data window moved {moved} day(s) since the last trained version "
        f"(cadence {settings.training_cadence_days})"
    )
    return TrainingPlan(due, why, window_end.isoformat(), reason)


def last_trained_window_end(settings: Settings) -> dt.date | None:
    """The data window end of the newest registered version, if any."""
    from mlflow.exceptions import MlflowException

    tracking = registry.client(settings)
    try:
        versions = tracking.search_model_versions(
            f"name='{settings.registered_model_name}'",
            order_by=["version_number DESC"],
            max_results=1,
        )
    except MlflowException:
        return None
    if not versions:
        return None
    value = versions[0].tags.get(f"{registry.TAG_PREFIX}data_window_end")
    return dt.date.fromisoformat(value) if value else None


def trigger_from_events(
    extras_by_asset: dict[str, list[dict[str, Any]]],
    manual_window_end: str | None,
    manual_reason: str,
    run_after: dt.date,
) -> tuple[dt.date, str]:
    """(window end, reason) for a run: drift requests win over feature updates; a manual run
    trains up to its ``window_end`` or the day before it runs."""
    drift = extras_by_asset.get("retrain_requested") or []
    features = extras_by_asset.get("customer_features_online") or []
    if drift:
        days = [e["date"] for e in drift if e.get("date")]
        reason = "drift: " + "; ".join(str(e.get("reason", "retrain requested")) for e in drift)
    elif features:
        days = [d for e in features for d in e.get("dates") or []]
        reason = FEATURES_REASON
    else:
        days = [manual_window_end] if manual_window_end else []
        reason = manual_reason
    window_end = (
        max(dt.date.fromisoformat(d) for d in days) if days else run_after - dt.timedelta(days=1)
    )
    return window_end, reason


def validated_days_in_window(settings: Settings, window_end: dt.date, window_days: int) -> int:
    from mlops_pipeline.data import storage

    start = window_end - dt.timedelta(days=window_days - 1)
    return sum(start <= day <= window_end for day in storage.partition_days(settings.lake_dir))


def days_needed(params: TrainingParams) -> int:
    return params.validation_days + params.test_days + 1
