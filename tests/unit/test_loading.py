"""One loader for a registered version: serving, promotion and the nightly check read the same
model and the same threshold (the version's tag), on an embedded MLflow registry."""

from __future__ import annotations

import types

import pytest

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.deployment.loading import (
    THRESHOLD_TAG,
    MissingThreshold,
    load_alias,
    load_version,
    version_threshold,
)
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.training.model import model_inputs, train_model
from tests.unit.small_usecase import labelled_frame, small_declaration, small_spec, write_usecase

TAGGED = 0.3125
# The copies the training job also writes, made to differ here: none of them may be read.
COPIES = 0.9


def _register(settings: Settings, trained, tags: dict[str, str]) -> str:
    """Log and register ``trained`` as the training job does, with ``tags`` on the version."""
    import mlflow
    from mlflow.models import infer_signature

    from mlops_pipeline.training.job import SKOPS_TRUSTED_TYPES

    spec = settings.spec
    tracking = registry.client(settings)
    experiment = registry.experiment_id(tracking, settings, spec.training_experiment)
    example = model_inputs(spec, trained.split.test.head(5))
    predict_fn = "predict_proba" if spec.is_classifier else "predict"
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_metrics({f"test_{k}": v for k, v in trained.metrics.items()})
        mlflow.log_metric("threshold", COPIES)
        info = mlflow.sklearn.log_model(
            trained.model,
            name="model",
            signature=infer_signature(example, getattr(trained.model, predict_fn)(example)),
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pyfunc_predict_fn=predict_fn,
            metadata={"threshold": COPIES},
            pip_requirements=["scikit-learn", "skops"],
        )
    registry.ensure_registered_model(tracking, settings)
    version = tracking.create_model_version(
        spec.model_name,
        source=info.model_uri,
        run_id=run.info.run_id,
        tags=tags,
        model_id=info.model_id,
    )
    registry.wait_until_ready(tracking, spec.model_name, version.version)
    tracking.set_registered_model_alias(spec.model_name, registry.CHAMPION, version.version)
    return str(version.version)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("usecases")
    write_usecase(root, small_declaration("binary_classification"))
    settings = Settings(usecases_dir=root, usecase="shop_signal", home=root / "home")
    trained = train_model(settings.spec, labelled_frame(settings.spec))
    version = _register(settings, trained, {THRESHOLD_TAG: f"{TAGGED:.6f}"})
    return settings, trained, version


def test_serving_promotion_and_the_nightly_check_agree_on_a_version(classifier):
    from mlops_pipeline.deployment.evaluation import score_model
    from mlops_pipeline.monitoring.nightly import load_champion
    from mlops_pipeline.serving.champion import ChampionWatcher

    settings, trained, version = classifier
    tracking = registry.client(settings)
    watcher = ChampionWatcher(settings)
    assert watcher.refresh() is True
    served = watcher.current
    monitored = load_champion(settings, tracking)
    promoted = score_model(
        load_version(tracking, settings.spec, tracking.get_model_version(served.name, version)),
        trained.split.test,
    )
    assert served.version == monitored.version == promoted.version == version
    assert served.threshold == monitored.threshold == promoted.threshold == TAGGED
    assert (served.alias, monitored.alias) == (registry.CHAMPION, registry.CHAMPION)
    # The same fitted model: the nightly check scores what the server answers.
    frame = trained.split.test.head(50)
    columns = model_inputs(settings.spec, frame).to_dict("list")
    assert served.scorer.score(columns) == pytest.approx(monitored.scores(frame))
    assert monitored.test_metrics == pytest.approx(trained.metrics)
    assert promoted.signature_compatible and promoted.model_size_mb > 0
    # Scored on the split it was tested on; the ranking metric does not depend on a threshold.
    assert promoted.metrics["roc_auc"] == pytest.approx(trained.metrics["roc_auc"])


def test_a_missing_alias_loads_nothing(classifier):
    settings, _, _ = classifier
    assert load_alias(registry.client(settings), settings.spec, "no_such_alias") is None


def test_a_classifier_version_without_a_threshold_fails_before_loading():
    spec = small_spec("binary_classification")
    untagged = types.SimpleNamespace(version="4", run_id="run-4", tags={})
    # No tracking client: the threshold is refused before anything is read or downloaded.
    with pytest.raises(MissingThreshold, match=f"v4 has no {THRESHOLD_TAG} tag") as refused:
        load_version(None, spec, untagged)
    assert isinstance(refused.value, PermanentFailure)
    assert spec.model_name in str(refused.value)


def test_the_threshold_is_the_versions_tag_and_none_for_a_regressor():
    classifier, regressor = small_spec("binary_classification"), small_spec("regression", "none")
    assert version_threshold(classifier, {THRESHOLD_TAG: "0.312500"}, "4") == 0.3125
    with pytest.raises(MissingThreshold, match="v4 has no mlops.threshold tag"):
        version_threshold(classifier, {}, "4")
    assert version_threshold(regressor, {THRESHOLD_TAG: "0.5"}, "4") is None
