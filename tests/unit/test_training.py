"""The model's training logic, for both task types: time split in partitions, threshold,
metrics, determinism, gates on real models, and serialization with skops."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.data import storage
from mlops_pipeline.data.datagen import generate_frame
from mlops_pipeline.deployment.gates import GateConfig, Scores, evaluate_gates
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.features.on_demand import add_on_demand_features
from mlops_pipeline.training.job import SKOPS_TRUSTED_TYPES
from mlops_pipeline.training.model import (
    TrainingDataError,
    choose_threshold,
    classification_metrics,
    evaluation_metrics,
    model_inputs,
    predict_scores,
    split_by_time,
    train_model,
)
from mlops_pipeline.training.planning import (
    FEATURES_REASON,
    plan_training,
    trigger_from_events,
    validated_partitions_in_window,
)
from mlops_pipeline.usecases.loader import load_usecase
from mlops_pipeline.usecases.vocabulary import Cadence

D0 = dt.date(2025, 6, 2)  # a Monday
# Small and quick, otherwise the declared churn model.
CHURN_OVERRIDES = {"training": {"min_train_rows": 100, "model": {"params": {"max_iter": 60}}}}


def churn_spec(**training):
    overrides = {"training": {**CHURN_OVERRIDES["training"], **training}}
    return load_usecase(get_settings().usecases_dir / "churn", overrides)


def training_frame(spec, days: int = 9, rows: int = 1_500, scenario: str = "clean"):
    frame = pd.concat(
        [
            generate_frame(spec, D0 + dt.timedelta(days=i), rows, scenario=scenario)
            for i in range(days)
        ],
        ignore_index=True,
    )
    # What the on-demand feature view adds (the training set builder gets them from Feast).
    columns = add_on_demand_features(spec, frame.to_dict("list"))
    for name in spec.on_demand_features:
        frame[name] = pd.Series(columns[name], dtype="float64")
    return frame


def regression_spec(root: Path, **overrides):
    """A small regression use case: units sold per shop, with a declared and an undeclared
    category (the second gets its categories from the training data)."""
    folder = root / "shop_units"
    folder.mkdir(parents=True, exist_ok=True)
    declaration = {
        "name": "shop_units",
        "description": "Units a shop sells in a day, for stock planning.",
        "task": "regression",
        "entity": {"name": "shop", "key": "shop_id"},
        "timestamp": "ts",
        "label": "units",
        "dataset": "shop_sales",
        "cadence": "daily",
        "columns": {
            "shop_id": {"kind": "int", "min": 1},
            "ts": {"kind": "timestamp"},
            "floor_area": {"kind": "float", "min": 0},
            "promo": {"kind": "bool"},
            "site": {"kind": "category", "values": ["mall", "street"]},
            "city": {"kind": "category"},
            "units": {"kind": "float", "min": 0, "description": "Units sold that day."},
        },
        "features": {
            "views": {
                "shop_facts": {"ttl": "P2D", "features": ["floor_area", "promo", "site", "city"]}
            },
            "service": "shop_units_v1",
        },
        "training": {"min_train_rows": 50, "model": {"params": {"max_iter": 60}}},
        "segments": ["site"],
    }
    (folder / "usecase.yaml").write_text(yaml.safe_dump(declaration, sort_keys=False))
    return load_usecase(folder, overrides)


def regression_frame(days: int = 8, rows: int = 400, seed: int = 3, every_days: int = 1):
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(days):
        day = D0 + dt.timedelta(days=i * every_days)
        area = rng.uniform(50, 500, rows)
        promo = rng.random(rows) < 0.3
        site = rng.choice(["mall", "street"], rows)
        city = rng.choice(["a", "b", "c"], rows)
        units = 0.2 * area + 30 * promo + np.where(site == "mall", 20, 0) + rng.normal(0, 8, rows)
        parts.append(
            pd.DataFrame(
                {
                    "shop_id": np.arange(rows) + 1,
                    "ts": pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=12),
                    "floor_area": area,
                    "promo": promo,
                    "site": site,
                    "city": city,
                    "units": units.clip(0),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def spec():
    return churn_spec()


@pytest.fixture(scope="module")
def frame(spec) -> pd.DataFrame:
    return training_frame(spec)


@pytest.fixture(scope="module")
def small_frame(spec) -> pd.DataFrame:
    return training_frame(spec, days=7, rows=300)


@pytest.fixture(scope="module")
def trained(spec, frame):
    return train_model(spec, frame)


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    spec = regression_spec(tmp_path_factory.mktemp("usecases"))
    frame = regression_frame()
    return spec, frame, train_model(spec, frame)


def test_split_is_by_whole_partitions_in_time_order(spec, frame):
    split = split_by_time(spec, frame)
    ts = spec.timestamp
    assert split.train[ts].max() < split.validation[ts].min()
    assert split.validation[ts].max() < split.test[ts].min()
    assert len(split.test_partitions) == 3 and len(split.validation_partitions) == 3
    assert len(split.train_partitions) == 3
    assert len(split.train) + len(split.validation) + len(split.test) == len(frame)
    assert not set(split.train_partitions) & (
        set(split.validation_partitions) | set(split.test_partitions)
    )


def test_split_counts_weekly_partitions(tmp_path):
    weekly = regression_spec(tmp_path, cadence="weekly")
    # Eight weeks, two days of rows in each (Monday and Thursday).
    frame = pd.concat(
        [
            regression_frame(days=8, rows=60, every_days=7),
            regression_frame(days=8, rows=60, seed=4, every_days=7).assign(
                ts=lambda f: f["ts"] + pd.Timedelta(days=3)
            ),
        ],
        ignore_index=True,
    )
    split = split_by_time(weekly, frame)
    assert (len(split.train_partitions), len(split.validation_partitions)) == (2, 3)
    assert len(split.test_partitions) == 3
    assert all(p.weekday() == 0 for p in split.test_partitions)
    assert len(split.test) == 3 * 2 * 60
    # A weekly partition is named by its Monday and ends on its Sunday.
    assert split.windows()["test"] == "2025-07-07..2025-07-27"
    with pytest.raises(TrainingDataError, match="6 weekly partition.*at least 7"):
        split_by_time(
            weekly, frame[frame["ts"] < pd.Timestamp(D0 + dt.timedelta(weeks=6), tz="UTC")]
        )


def test_split_counts_hourly_partitions_across_midnight(tmp_path):
    hourly = regression_spec(tmp_path, cadence="hourly")
    # Eight hours of rows from 20:00, each hour's a quarter past it.
    frame = regression_frame(days=8, rows=60)
    first = pd.Timestamp("2025-06-01T20:15:00Z")
    frame["ts"] = first + pd.to_timedelta(frame.index // 60, unit="h")
    split = split_by_time(hourly, frame)
    assert split.train_partitions == [dt.datetime(2025, 6, 1, 20), dt.datetime(2025, 6, 1, 21)]
    assert split.validation_partitions == [
        dt.datetime(2025, 6, 1, 22),
        dt.datetime(2025, 6, 1, 23),
        dt.datetime(2025, 6, 2, 0),
    ]
    assert len(split.test) == 3 * 60 and split.test["ts"].min() == first + pd.Timedelta(hours=5)
    # An hourly part's span runs from its first hour to its last.
    assert split.windows() == {
        "train": "2025-06-01T20..2025-06-01T21",
        "validation": "2025-06-01T22..2025-06-02T00",
        "test": "2025-06-02T01..2025-06-02T03",
    }
    with pytest.raises(TrainingDataError, match="6 hourly partition.*at least 7"):
        split_by_time(hourly, frame[frame["ts"] < first + pd.Timedelta(hours=6)])


def test_split_refuses_what_cannot_train(spec, frame):
    with pytest.raises(TrainingDataError, match="at least 7"):
        split_by_time(spec, frame[frame[spec.timestamp].dt.date < D0 + dt.timedelta(6)])
    with pytest.raises(TrainingDataError, match="fewer than the minimum"):
        split_by_time(churn_spec(min_train_rows=10**6), frame)
    single = frame.assign(**{spec.label: 0})
    with pytest.raises(TrainingDataError, match="single label class"):
        split_by_time(spec, single)
    assert issubclass(TrainingDataError, PermanentFailure)


def test_threshold_maximises_validation_f1():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    chosen = choose_threshold(labels, scores)
    # Every candidate's F1 with the decision rule of ``classification_metrics`` (score >= t),
    # vectorised: the full metric set per candidate took half a minute.
    candidates = np.unique(scores)
    decisions = scores[None, :] >= candidates[:, None]
    true_positives = (decisions & (labels == 1)).sum(axis=1)
    best = float((2 * true_positives / (decisions.sum(axis=1) + labels.sum())).max())
    assert classification_metrics(labels, scores, chosen)["f1"] == pytest.approx(best)


def test_metrics_on_known_values(spec, regression):
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = evaluation_metrics(spec, labels, probabilities, threshold=0.5)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["brier"] == pytest.approx(np.mean((probabilities - labels) ** 2))
    assert (metrics["precision"], metrics["recall"]) == (1.0, 0.5)

    regression_usecase = regression[0]
    values = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.0, 2.0, 3.0, 6.0])
    metrics = evaluation_metrics(regression_usecase, values, predicted, None)
    assert metrics["rmse"] == pytest.approx(1.0) and metrics["mae"] == pytest.approx(0.5)
    assert metrics["r2"] == pytest.approx(1 - 4 / 5) and metrics["label_mean"] == 2.5
    assert metrics["rows"] == 4


def test_model_is_good_calibrated_and_reports_segments(spec, trained):
    assert 0.72 < trained.metrics["roc_auc"] < 0.9
    test = trained.split.test
    probabilities = trained.model.predict_proba(model_inputs(spec, test))[:, 1]
    assert abs(probabilities.mean() - test[spec.label].mean()) < 0.04
    assert set(trained.segment_metrics) == set(spec.segments)
    plan = spec.segments[0]
    assert set(trained.segment_metrics[plan]) == set(spec.column(plan).values)
    assert 0 < trained.threshold < 1


def test_same_data_and_declaration_give_the_same_model(spec, frame, trained):
    again = train_model(spec, frame)
    assert again.metrics == trained.metrics and again.threshold == trained.threshold
    inputs = model_inputs(spec, trained.split.test)
    np.testing.assert_array_equal(
        again.model.predict_proba(inputs), trained.model.predict_proba(inputs)
    )


def test_the_declared_hyperparameters_are_the_model(spec, trained):
    trees = trained.model.calibrated_classifiers_[0].estimator.estimator.named_steps["model"]
    declared = spec.training.model
    for name, value in declared.params.items():
        assert trees.get_params()[name] == value
    assert trees.random_state == declared.seed and trees.class_weight == "balanced"
    assert trained.model.calibrated_classifiers_[0].method == declared.calibration


def test_a_regressor_trains_and_evaluates(regression):
    spec, _, trained = regression
    assert trained.threshold is None
    assert set(trained.metrics) == {"rmse", "mae", "r2", "label_mean", "rows"}
    assert trained.metrics["r2"] > 0.8
    assert trained.metrics["rmse"] >= trained.metrics["mae"] > 0
    assert set(trained.segment_metrics["site"]) == {"mall", "street"}
    assert "r2" in trained.segment_metrics["site"]["mall"]
    # The undeclared category learns its values from the training partitions.
    encode = trained.model.named_steps["encode"].named_transformers_["categories"]
    assert [list(c) for c in encode.categories_] == [["mall", "street"], ["a", "b", "c"]]


def test_regression_gates_promote_a_better_model_and_block_a_worse_one(regression, tmp_path):
    spec, frame, good = regression
    weak_spec = regression_spec(tmp_path, training={"model": {"params": {"max_iter": 3}}})
    weak = train_model(weak_spec, frame)
    config = GateConfig.from_spec(spec)
    assert config.primary_metric == "r2"
    assert {g.metric for g in config.metrics} == {"r2", "rmse", "mae"}

    def scores(trained) -> Scores:
        test = good.split.test
        predicted = predict_scores(spec, trained.model, model_inputs(spec, test))
        return Scores(
            metrics=evaluation_metrics(spec, test[spec.label].to_numpy(), predicted, None),
            p99_latency_ms=1.0,
            model_size_mb=1.0,
        )

    better, worse = scores(good), scores(weak)
    assert better.metrics["rmse"] < worse.metrics["rmse"]
    promoted = evaluate_gates(better, worse, config)
    assert promoted.passed, promoted.reasons()
    blocked = evaluate_gates(worse, better, config)
    failed = {c.name for c in blocked.failures}
    assert {"improvement:r2", "regression:rmse", "regression:mae"} <= failed
    # Error metrics have no absolute bound: gated against the champion only.
    floor = next(c for c in promoted.checks if c.name == "floor:rmse")
    assert floor.threshold is None and "no bound" in floor.detail


@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic", "none"])
def test_a_classifier_logs_and_loads_with_skops(small_frame, calibration, tmp_path):
    spec = churn_spec(min_train_rows=50, model={"calibration": calibration})
    trained = train_model(spec, small_frame)
    if calibration == "none":
        assert not hasattr(trained.model, "calibrated_classifiers_")
    else:
        assert trained.model.calibrated_classifiers_[0].method == calibration
    _round_trip(spec, trained, "predict_proba", tmp_path)


def test_a_regressor_logs_and_loads_with_skops(regression, tmp_path):
    spec, _, trained = regression
    _round_trip(spec, trained, "predict", tmp_path)


def _round_trip(spec, trained, predict_fn, tmp_path) -> None:
    """Saved as the training job logs it (``log_model`` saves the same way), loaded as
    promotion and serving load it."""
    import mlflow

    example = model_inputs(spec, trained.split.test.head(200))
    mlflow.sklearn.save_model(
        trained.model,
        tmp_path / "model",
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pyfunc_predict_fn=predict_fn,
        # Inferring them loads the model in a subprocess: half a minute on a busy machine.
        pip_requirements=["scikit-learn", "skops"],
    )
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    expected = getattr(trained.model, predict_fn)(example)
    np.testing.assert_allclose(np.asarray(loaded.predict(example)), expected)


def _settings(**training) -> Settings:
    return Settings(usecase="churn", usecase_overrides=json.dumps({"churn": training}))


def test_retraining_is_measured_in_partitions_of_data_windows():
    settings = _settings(training={"retrain_every_partitions": 7})
    day = dt.date(2025, 6, 30)
    assert plan_training(settings, day, FEATURES_REASON, None).due
    assert not plan_training(settings, day, FEATURES_REASON, day - dt.timedelta(days=3)).due
    assert plan_training(settings, day, FEATURES_REASON, day - dt.timedelta(days=7)).due
    assert plan_training(settings, day, "drift: share 0.4", day).due
    waiting = plan_training(settings, day, FEATURES_REASON, None, 4, 7)
    assert not waiting.due and "4 of 7" in waiting.why

    weekly = _settings(cadence="weekly", training={"retrain_every_partitions": 2})
    assert not plan_training(weekly, day, FEATURES_REASON, day - dt.timedelta(days=7)).due
    moved = plan_training(weekly, day, FEATURES_REASON, day - dt.timedelta(days=14))
    assert moved.due and "moved 2 weekly partition(s)" in moved.why


def test_an_hourly_plan_counts_hours_across_midnight():
    hourly = _settings(cadence="hourly", training={"retrain_every_partitions": 4})
    hour = dt.datetime(2025, 6, 30, 1)
    three_back, four_back = dt.datetime(2025, 6, 29, 22), dt.datetime(2025, 6, 29, 21)
    assert not plan_training(hourly, hour, FEATURES_REASON, three_back).due
    moved = plan_training(hourly, hour, FEATURES_REASON, four_back)
    assert moved.due and "moved 4 hourly partition(s)" in moved.why
    assert moved.window_end == "2025-06-30T01"
    waiting = plan_training(hourly, hour, FEATURES_REASON, None, 6, 7)
    assert not waiting.due and "6 of 7 validated hourly partition(s)" in waiting.why


def test_an_hourly_trigger_names_an_hour(settings):
    cadence = Cadence.HOURLY
    run_after = dt.datetime(2025, 7, 10, 0, 5, tzinfo=dt.UTC)
    # A manual run trains up to the last hour completed before it: yesterday's last.
    assert trigger_from_events({}, None, "manual", run_after, cadence) == (
        dt.datetime(2025, 7, 9, 23),
        "manual",
    )
    features = {"features_online": [{"dates": ["2025-07-09T22", "2025-07-09T23"]}]}
    assert trigger_from_events(features, None, "manual", run_after, cadence)[0] == dt.datetime(
        2025, 7, 9, 23
    )
    # The window counts the validated hours of the lake, across midnight.
    hourly = settings.replace(usecase_overrides='{"churn": {"cadence": "hourly"}}')
    for hour in (dt.datetime(2025, 7, 9, 22), dt.datetime(2025, 7, 10, 1)):
        storage.partition_dir(hourly.lake_dir, hour).mkdir(parents=True)
    assert validated_partitions_in_window(hourly, dt.datetime(2025, 7, 10, 1), 4) == 2
    assert validated_partitions_in_window(hourly, dt.datetime(2025, 7, 10, 1), 3) == 1


def test_triggers_name_the_window_and_the_reason():
    run_after = dt.date(2025, 7, 10)
    assert trigger_from_events({}, None, "manual", run_after) == (dt.date(2025, 7, 9), "manual")
    assert trigger_from_events({}, "2025-07-01", "tune", run_after) == (dt.date(2025, 7, 1), "tune")
    features = {"features_online": [{"dates": ["2025-07-03", "2025-07-04"]}]}
    assert trigger_from_events(features, None, "manual", run_after) == (
        dt.date(2025, 7, 4),
        FEATURES_REASON,
    )
    drift = {**features, "retrain_requested": [{"date": "2025-07-05", "reason": "drift 0.4"}]}
    assert trigger_from_events(drift, None, "manual", run_after) == (
        dt.date(2025, 7, 5),
        "drift: drift 0.4",
    )


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_promotion_scores_a_version_of_either_task(
    regression, small_frame, task, tmp_path, monkeypatch
):
    """``score_model`` as the deploy DAG runs it, on a version saved as the training job logs
    it and loaded as every consumer loads it (``deployment.loading``): a regressor by its
    predictions (no threshold), a classifier at its own threshold."""
    import shutil
    import types

    import mlflow
    from mlflow.models import infer_signature

    from mlops_pipeline.deployment.evaluation import score_model
    from mlops_pipeline.deployment.loading import THRESHOLD_TAG, load_version

    if task == "regression":
        usecase, _, trained = regression
    else:
        usecase = churn_spec(min_train_rows=50)
        trained = train_model(usecase, small_frame)
    predict_fn = "predict_proba" if usecase.is_classifier else "predict"
    example = model_inputs(usecase, trained.split.test.head(5))
    mlflow.sklearn.save_model(
        trained.model,
        tmp_path / "model",
        signature=infer_signature(example, getattr(trained.model, predict_fn)(example)),
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pyfunc_predict_fn=predict_fn,
        pip_requirements=["scikit-learn", "skops"],
    )

    def download(artifact_uri: str, dst_path: str) -> str:
        assert artifact_uri == f"models:/{usecase.model_name}/3"
        return str(shutil.copytree(tmp_path / "model", Path(dst_path) / "model"))

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", download)
    run = types.SimpleNamespace(data=types.SimpleNamespace(metrics={}))
    tracking = types.SimpleNamespace(get_run=lambda run_id: run)
    tags = {} if trained.threshold is None else {THRESHOLD_TAG: repr(trained.threshold)}
    version = types.SimpleNamespace(version="3", run_id="run-3", tags=tags)
    scored = score_model(load_version(tracking, usecase, version), trained.split.test)
    assert scored.threshold == trained.threshold
    assert scored.metrics == pytest.approx(trained.metrics)
    assert scored.signature_compatible and scored.p99_latency_ms > 0
    assert scored.model_size_mb > 0
    segment = usecase.segments[0]
    value = sorted(trained.segment_metrics[segment])[0]
    rows, primary = scored.segments[f"{segment}={value}"]
    assert primary == pytest.approx(trained.segment_metrics[segment][value][usecase.primary_metric])
    json.dumps(scored.model_dump(mode="json"))


def test_the_training_job_registers_a_regressor(tmp_path, monkeypatch):
    """The whole job on a regression use case (the Feast training set stubbed): names from the
    declaration, ``predict`` as the pyfunc, no threshold, regression metrics, a model card."""
    import types

    import mlflow

    from mlops_pipeline.deployment import registry
    from mlops_pipeline.features import access
    from mlops_pipeline.training.job import TrainingRequest, train_and_register

    spec = regression_spec(tmp_path / "usecases")
    settings = Settings(
        home=tmp_path / "home", usecases_dir=tmp_path / "usecases", usecase=spec.name
    )
    frame = regression_frame()
    days = sorted(frame["ts"].dt.date.unique())
    asked = []

    def training_set(settings, start, end):
        asked.append((start, end))
        partitions = [
            {"date": d.isoformat(), "content_sha256": "x", "validation_id": "v"} for d in days
        ]
        return types.SimpleNamespace(frame=frame, partitions=partitions)

    monkeypatch.setattr(access, "build_training_set", training_set)
    outcome = train_and_register(settings, TrainingRequest(days[-1], window_partitions=8))
    assert asked == [(days[0], days[-1])]
    assert outcome.model_name == spec.model_name and outcome.threshold is None
    assert set(outcome.metrics) == {"rmse", "mae", "r2", "label_mean", "rows"}

    tracking = registry.client(settings)
    model = tracking.get_registered_model(spec.model_name)
    assert model.description == spec.description and {
        k: str(v) for k, v in model.aliases.items()
    } == {"challenger": "1"}
    version = tracking.get_model_version(spec.model_name, "1")
    assert version.tags["mlops.feature_service"] == spec.features.service
    assert version.tags["mlops.feature_views"] == "shop_facts"
    assert "mlops.threshold" not in version.tags
    run = tracking.get_run(outcome.run_id)
    assert tracking.get_experiment(run.info.experiment_id).name == spec.training_experiment
    assert run.data.metrics["test_r2"] == outcome.metrics["r2"]
    assert "threshold" not in run.data.metrics and "test_site_mall_rmse" in run.data.metrics
    (listed,) = registry.registered_versions(settings)
    assert listed["test_r2"] == outcome.metrics["r2"] and listed["threshold"] is None
    assert {"test_rmse", "test_mae"} <= set(listed) and "test_roc_auc" not in listed
    loaded = mlflow.pyfunc.load_model(outcome.model_uri)
    assert loaded.metadata.flavors["python_function"]["predict_fn"] == "predict"
    # The requirements are the pins that trained it, not MLflow's inference in a subprocess.
    requirements = Path(
        mlflow.artifacts.download_artifacts(f"{outcome.model_uri}/requirements.txt")
    ).read_text()
    from importlib.metadata import version as installed

    assert f"scikit-learn=={installed('scikit-learn')}" in requirements
    assert f"skops=={installed('skops')}" in requirements
    card = Path(
        mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path="model_card")
    )
    text = (card / "model_card.md").read_text()
    assert spec.description in text and "| rmse |" in text and "Decision threshold" not in text
    assert (card / "shap_importance.png").stat().st_size > 0
