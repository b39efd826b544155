"""Loading a registered model version, the one way serving, promotion and monitoring do it.

A version is loaded as the scikit-learn model it was logged as (the same object the model
server compiles and the nightly check scores), with what every consumer needs beside it: its
decision threshold, run, test metrics, size and input signature.

The threshold has one source: the version tag ``mlops.threshold``, which the training job
writes in the same call that creates the version (the run metric and the pyfunc metadata carry
copies; a version without the tag is refused rather than read from a copy).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.deployment import registry
from mlops_pipeline.failures import PermanentFailure

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_pipeline.usecases.spec import UseCaseSpec

THRESHOLD_TAG = f"{registry.TAG_PREFIX}threshold"


class MissingThreshold(PermanentFailure):
    """A classifier's registered version carries no decision threshold."""


@dataclass(frozen=True)
class LoadedVersion:
    """A registered version in memory: the fitted model and what it was registered with."""

    spec: UseCaseSpec
    version: str
    run_id: str
    threshold: float | None  # classifiers: the decision threshold; None for a regressor
    model: Any  # the fitted scikit-learn pipeline, on ``training.model_inputs`` frames
    alias: str | None = None  # the alias it was loaded through, None when loaded by number
    size_mb: float = 0.0  # the logged model's files
    input_schema: Mapping[str, str] = field(default_factory=dict)  # column -> MLflow type
    test_metrics: Mapping[str, float] = field(default_factory=dict)  # metric -> test value
    loaded_at: str | None = None  # when it was read from the registry

    @property
    def name(self) -> str:
        return self.spec.model_name

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's score of every row of ``frame``: a classifier's positive-class
        probability, a regressor's predicted value."""
        from mlops_pipeline.training.model import model_inputs, predict_scores

        return predict_scores(self.spec, self.model, model_inputs(self.spec, frame))


def version_threshold(spec: UseCaseSpec, tags: Mapping[str, str], version: str) -> float | None:
    """The decision threshold from the version's tag, chosen on the validation partitions at
    registration. A regressor has none."""
    if not spec.is_classifier:
        return None
    if tags.get(THRESHOLD_TAG) is None:
        raise MissingThreshold(
            f"{spec.model_name} v{version} has no {THRESHOLD_TAG} tag: a classifier is "
            "registered with its decision threshold, so this version cannot be scored"
        )
    return float(tags[THRESHOLD_TAG])


def load_version(
    tracking: Any, spec: UseCaseSpec, version: Any, alias: str | None = None
) -> LoadedVersion:
    """Load ``version`` (the registry's model version entity) of the use case's model. Raises
    ``MissingThreshold`` for a classifier registered without one, before downloading it."""
    import mlflow
    from mlflow.models import Model

    number = str(version.version)
    threshold = version_threshold(spec, version.tags or {}, number)
    metrics = tracking.get_run(version.run_id).data.metrics
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as scratch:
        # Loaded into memory whole, so the downloaded files need not outlive the load.
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{spec.model_name}/{number}", dst_path=scratch
        )
        files = [p for p in Path(local).rglob("*") if p.is_file()]
        size_mb = sum(p.stat().st_size for p in files) / 2**20
        model = mlflow.sklearn.load_model(local)
        schema = Model.load(local).get_input_schema()
    return LoadedVersion(
        spec=spec,
        version=number,
        run_id=version.run_id,
        threshold=threshold,
        model=model,
        alias=alias,
        size_mb=size_mb,
        input_schema={col.name: col.type.name for col in schema.inputs} if schema else {},
        test_metrics={
            key.removeprefix("test_"): value
            for key, value in metrics.items()
            if key.startswith("test_")
        },
        loaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def load_alias(tracking: Any, spec: UseCaseSpec, alias: str) -> LoadedVersion | None:
    """The version ``alias`` points at, loaded; None while the alias points nowhere."""
    version = registry.version_for_alias(tracking, spec.model_name, alias)
    return None if version is None else load_version(tracking, spec, version, alias)
