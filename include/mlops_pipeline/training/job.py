"""The training task: training set -> model -> MLflow run -> registered ``challenger``.

Everything about the model comes from the use case's declaration (``settings.spec``): the
experiment, the registered model and its description, the feature service, the split, the
hyperparameters. Order matters for failures: everything is logged to the run first, then the
version is registered, and the ``challenger`` alias moves last. A failure after the version
exists deletes that version, so no alias can point at a half-logged model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.training.model import (
    SEGMENT_KEY_METRICS,
    model_inputs,
    train_model,
)
from mlops_pipeline.training.model_card import (
    card_sections,
    render_html,
    render_markdown,
    shap_summary,
)
from mlops_pipeline.usecases.vocabulary import partition_key

if TYPE_CHECKING:
    from mlops_pipeline.usecases.spec import UseCaseSpec

log = logging.getLogger(__name__)

# skops loads only types it trusts. These are the scikit-learn internals the declared model
# shapes need beyond skops' defaults (asked of ``skops.io.get_untrusted_types`` for an
# isotonic- and a sigmoid-calibrated classifier, an uncalibrated one and a regressor, all
# HistGradientBoosting pipelines); anything else makes logging fail.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
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
    # Partitions of the use case's cadence in the window (None: the declared window).
    window_partitions: int | None = None
    reason: str = "manual"
    dag_id: str = ""
    run_id: str = ""

    def partitions(self, spec: UseCaseSpec) -> int:
        return self.window_partitions or spec.training.split.window_partitions

    def window_start(self, spec: UseCaseSpec) -> dt.date:
        return spec.cadence.partitions_back(self.window_end, self.partitions(spec))


@dataclass
class TrainingOutcome:
    model_name: str
    version: str
    run_id: str
    model_uri: str
    threshold: float | None
    metrics: dict[str, float]
    data_window: str
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def skops_probing_quiet() -> Generator[None, None, None]:
    """Without the warnings skops sets off when it saves a model in a task: it names a type's
    module by probing every loaded module for it, and each of Airflow's deprecated-module shims
    warns on every probe (a thousand lines of a task's log; skops silences DeprecationWarning,
    and these are FutureWarnings)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.")
        yield


def model_requirements() -> list[str]:
    """What loading a logged model needs, pinned to the versions that trained it. Given
    explicitly: left to infer them, MLflow loads the model in a subprocess to see what it
    imports, for the same answer."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "numpy", "scipy")]


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


def metric_key(*parts: str) -> str:
    """An MLflow metric name from parts (segment values may hold characters MLflow refuses)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", "_".join(parts))


def model_params(spec: UseCaseSpec) -> dict[str, Any]:
    """The declared model, flat, as the run's parameters."""
    declared = spec.training.model
    values: dict[str, Any] = {
        "task": spec.task.value,
        "family": declared.family,
        "seed": declared.seed,
        **declared.params,
    }
    if spec.is_classifier:
        values["calibration"] = declared.calibration
    split = spec.training.split
    values.update(
        validation_partitions=split.validation_partitions,
        test_partitions=split.test_partitions,
        min_train_partitions=split.min_train_partitions,
        min_train_rows=spec.training.min_train_rows,
        cadence=spec.cadence.value,
    )
    return values


def train_and_register(settings: Settings, request: TrainingRequest) -> TrainingOutcome:
    import mlflow
    import mlflow.data
    from mlflow.models import infer_signature

    from mlops_pipeline.features.access import build_training_set

    spec = settings.spec
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    tracking = registry.client(settings)  # fails fast (and retryably) when unreachable
    experiment = registry.experiment_id(tracking, settings, spec.training_experiment)
    timings["connect"] = time.perf_counter() - mark

    window_start = request.window_start(spec)
    mark = time.perf_counter()
    training_set = build_training_set(settings, window_start, request.window_end)
    timings["training_set"] = time.perf_counter() - mark
    mark = time.perf_counter()
    trained = train_model(spec, training_set.frame)
    timings["fit_calibrate_evaluate"] = time.perf_counter() - mark

    window = f"{partition_key(window_start)}..{spec.cadence.key(request.window_end)}"
    version_of_data = data_version(training_set.partitions)
    prefix = registry.TAG_PREFIX
    tags = {
        f"{prefix}usecase": spec.name,
        f"{prefix}task": spec.task.value,
        f"{prefix}code_version": code_version(),
        f"{prefix}airflow_dag_id": request.dag_id or "none",
        f"{prefix}airflow_run_id": request.run_id or "none",
        f"{prefix}validation_ids": ",".join(
            p.get("validation_id") or "" for p in training_set.partitions
        ),
        f"{prefix}feature_service": spec.features.service,
        f"{prefix}feature_views": ",".join(spec.feature_views),
        f"{prefix}data_window": window,
        f"{prefix}data_window_end": spec.cadence.key(request.window_end),
        f"{prefix}data_version": version_of_data,
        f"{prefix}trigger_reason": request.reason,
        f"{prefix}serialization": "skops",
    }
    if trained.threshold is not None:
        tags[f"{prefix}threshold"] = f"{trained.threshold:.6f}"
    lineage = {
        "usecase": spec.name,
        "feature_service": spec.features.service,
        "feature_views": list(spec.feature_views),
        "data_window": window,
        "data_version": version_of_data,
        "partitions": training_set.partitions,
        "tags": tags,
    }

    with tempfile.TemporaryDirectory(prefix="mlops-train-") as scratch:
        out = Path(scratch)
        mark = time.perf_counter()
        shap = shap_summary(trained, out / "model_card", SHAP_SAMPLE_ROWS)
        timings["shap"] = time.perf_counter() - mark
        title = f"Model card: {spec.model_name}, data window {window}"
        sections = card_sections(trained, shap, lineage, SERIALIZATION)
        (out / "model_card" / "model_card.md").write_text(render_markdown(title, sections))
        (out / "model_card" / "model_card.html").write_text(render_html(title, sections))
        (out / "data_lineage.json").write_text(json.dumps(lineage, indent=2, default=str))
        train = trained.split.train
        reference = train.sample(
            n=min(REFERENCE_ROWS, len(train)), random_state=spec.training.model.seed
        )
        (out / "reference").mkdir()
        reference[[spec.timestamp, *spec.model_features, spec.label]].to_parquet(
            out / "reference" / "reference.parquet", index=False
        )

        mark = time.perf_counter()
        example = model_inputs(spec, trained.split.test.head(5))
        predict_fn = "predict_proba" if spec.is_classifier else "predict"
        output = getattr(trained.model, predict_fn)(example)
        signature = infer_signature(example, output)
        metadata: dict[str, Any] = {
            "usecase": spec.name,
            "task": spec.task.value,
            "feature_service": spec.features.service,
        }
        if trained.threshold is not None:
            metadata["threshold"] = trained.threshold
        with mlflow.start_run(experiment_id=experiment, run_name=f"train-{window}") as run:
            mlflow.set_tags(tags)
            mlflow.log_params(
                {
                    **model_params(spec),
                    "window_partitions": request.partitions(spec),
                    **{f"window_{k}": v for k, v in trained.split.windows().items()},
                }
            )
            mlflow.log_metrics({f"test_{k}": v for k, v in trained.metrics.items()})
            if trained.threshold is not None:
                mlflow.log_metric("threshold", trained.threshold)
            segment_names = SEGMENT_KEY_METRICS[spec.is_classifier]
            mlflow.log_metrics(
                {
                    metric_key("test", column, value, name): row[name]
                    for column, values in trained.segment_metrics.items()
                    for value, row in values.items()
                    for name in segment_names
                }
            )
            # Set on the module at import time from mlflow's dataset registry.
            dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
                training_set.frame,
                source=settings.lake_dir.as_uri(),
                name=f"{spec.features.service}:{window}",
                targets=spec.label,
                digest=version_of_data[:32],
            )
            mlflow.log_input(
                dataset,
                context="training",
                # One tag per lake partition: its content hash is that partition's data version.
                tags={
                    f"{prefix}partition.{p['date']}": p.get("content_sha256") or ""
                    for p in training_set.partitions
                },
            )
            with skops_probing_quiet():
                info = mlflow.sklearn.log_model(
                    trained.model,
                    name="model",
                    signature=signature,
                    input_example=example,
                    serialization_format="skops",
                    skops_trusted_types=SKOPS_TRUSTED_TYPES,
                    pyfunc_predict_fn=predict_fn,
                    metadata=metadata,
                    pip_requirements=model_requirements(),
                )
            mlflow.log_artifacts(str(out / "model_card"), artifact_path="model_card")
            mlflow.log_artifacts(str(out / "reference"), artifact_path="reference")
            mlflow.log_artifact(str(out / "data_lineage.json"))
        timings["mlflow_logging"] = time.perf_counter() - mark

    mark = time.perf_counter()
    name = spec.model_name
    registry.ensure_registered_model(tracking, settings)
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
