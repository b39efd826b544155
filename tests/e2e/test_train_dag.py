"""Training through Airflow against the embedded MLflow registry; failure modes for real."""

from __future__ import annotations

import shutil
import sys

import pytest

from mlops_pipeline.deployment import registry
from mlops_pipeline.orchestration.runner import asset_event_extras
from mlops_pipeline.platform.status import platform_status
from mlops_pipeline.serving.process import free_port
from mlops_pipeline.training.job import TrainingRequest, train_and_register
from tests.conftest import REPO
from tests.e2e.conftest import DAYS

MODEL = "churn-classifier"


def test_training_run_registers_a_complete_challenger(runner, lake):
    import mlflow

    run = runner.run_dag(
        "churn__train",
        conf={"window_end": DAYS[-1].isoformat(), "reason": "e2e test"},
    )
    assert str(run.state) == "success", runner.task_states(run)

    tracking = registry.client(lake)
    version = tracking.get_model_version_by_alias(MODEL, registry.CHALLENGER)
    assert str(version.version) == "1"
    tags = version.tags
    for key in (
        "code_version",
        "airflow_dag_id",
        "airflow_run_id",
        "validation_ids",
        "feature_service",
        "feature_views",
        "data_window",
        "data_version",
        "trigger_reason",
    ):
        assert tags.get(f"mlops.{key}"), key
    assert tags["mlops.airflow_run_id"] == run.run_id
    assert tags["mlops.trigger_reason"] == "e2e test"
    assert len(tags["mlops.validation_ids"].split(",")) == len(DAYS)

    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@{registry.CHALLENGER}")
    probabilities = model.predict(model.input_example)
    assert probabilities.shape == (5, 2) and ((0 <= probabilities) & (probabilities <= 1)).all()
    assert model.metadata.metadata["threshold"] == pytest.approx(float(tags["mlops.threshold"]))

    artifacts = {a.path for a in tracking.list_artifacts(version.run_id, "model_card")}
    assert {
        "model_card/model_card.md",
        "model_card/model_card.html",
        "model_card/shap_importance.png",
    } <= artifacts
    card = mlflow.artifacts.load_text(f"runs:/{version.run_id}/model_card/model_card.md")
    assert "SHAP" in card and "skops" in card and "plan=basic" in card
    assert tracking.list_artifacts(version.run_id, "reference")
    run_data = tracking.get_run(version.run_id)
    (dataset_input,) = run_data.inputs.dataset_inputs
    input_tags = {t.key: t.value for t in dataset_input.tags}
    partitions = sorted(k for k in input_tags if k.startswith("mlops.partition."))
    assert partitions == [f"mlops.partition.{d.isoformat()}" for d in DAYS]
    assert all(len(input_tags[k]) == 64 for k in partitions)
    assert dataset_input.dataset.digest == tags["mlops.data_version"][:32]
    assert 0.6 < run_data.data.metrics["test_roc_auc"] < 0.95

    event = asset_event_extras("churn__challenger")[-1]
    assert event["version"] == "1" and event["run_id"] == version.run_id

    listed = platform_status(lake)["models"]["versions"]
    assert [(v["version"], v["aliases"]) for v in listed] == [("1", [registry.CHALLENGER])]
    assert listed[0]["test_roc_auc"] == run_data.data.metrics["test_roc_auc"]


def test_same_data_and_params_give_the_same_metrics(lake):
    request = TrainingRequest(DAYS[-1], reason="determinism")
    first = train_and_register(lake, request)
    second = train_and_register(lake, request)
    assert (first.version, second.version) == ("1", "2")
    assert first.metrics == second.metrics and first.threshold == second.threshold


def test_too_little_data_fails_fast_without_retries(runner, lake):
    # A manual run always trains: three days cannot hold a time split, a deterministic failure.
    run = runner.run_dag("churn__train", conf={"window_end": DAYS[2].isoformat()})
    states = runner.task_states(run)
    assert str(run.state) == "failed" and states["train"] == "failed"
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(run_id=run.run_id, task_id="train").one()
        assert ti.try_number == 1


def _ti(run_id, task_id):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(run_id=run_id, task_id=task_id).one()
        return ti.try_number, ti.max_tries


def test_a_usecase_transform_that_raises_fails_its_task_without_retries(
    runner, lake, tmp_path, monkeypatch
):
    """A bug in a use case's own Python is permanent: the task fails at once, and says so."""
    from mlops_pipeline.config import get_settings
    from mlops_pipeline.failures import UserCodeError
    from mlops_pipeline.features.on_demand import add_on_demand_features

    # The same use case, declared in a folder whose transforms look up a column that is not
    # there (KeyError), as a typo in a use case's transforms.py would.
    usecases = tmp_path / "usecases"
    shutil.copytree(REPO / "usecases" / "churn", usecases / "churn")
    functions = {v.function for v in lake.spec.features.on_demand.values()}
    assert functions, "churn declares on-demand features"
    (usecases / "churn" / "transforms.py").write_text(
        "".join(f"def {f}(inputs):\n    return inputs['no_such_column']\n\n" for f in functions)
    )
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(usecases))
    # This process already imported the real transforms (under a stable module name).
    monkeypatch.delitem(sys.modules, f"mlops_usecase_{lake.spec.name}_transforms", raising=False)
    broken = get_settings().spec
    with pytest.raises(UserCodeError, match="KeyError"):
        add_on_demand_features(broken, {c: [1] for c in broken.feature_columns})

    run = runner.run_dag("churn__train", conf={"window_end": DAYS[-1].isoformat()})
    states = runner.task_states(run)
    assert str(run.state) == "failed" and states["train"] == "failed", states
    try_number, max_tries = _ti(run.run_id, "train")
    assert max_tries >= 1, "the task keeps its retries for transient faults"
    assert try_number == 1, "a transform's bug is not retried"
    assert not registry.client(lake).search_model_versions(f"name='{MODEL}'")


def test_unreachable_tracking_server_is_a_retryable_failure(lake, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    unreachable = lake.replace(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(registry.TrackingUnavailable, match="unreachable"):
        train_and_register(unreachable, TrainingRequest(DAYS[-1]))


def test_failure_after_registration_leaves_no_alias_on_the_version(lake, monkeypatch):
    request = TrainingRequest(DAYS[-1], reason="first")
    assert train_and_register(lake, request).version == "1"

    def never_ready(*args, **kwargs):
        raise RuntimeError("registration did not complete")

    monkeypatch.setattr(registry, "wait_until_ready", never_ready)
    with pytest.raises(RuntimeError, match="did not complete"):
        train_and_register(lake, request)
    tracking = registry.client(lake)
    assert str(tracking.get_model_version_by_alias(MODEL, registry.CHALLENGER).version) == "1"
    versions = {str(v.version) for v in tracking.search_model_versions(f"name='{MODEL}'")}
    assert versions == {"1"}, "the half-registered version is deleted"
