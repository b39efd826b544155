"""What the drift check measures (Evidently on generated partitions) and when it asks to
retrain, for the shipped classifier and a regression use case."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.data import storage
from mlops_pipeline.data.datagen import generate_frame
from mlops_pipeline.deployment.loading import LoadedVersion
from mlops_pipeline.failures import PermanentFailure, SpecError
from mlops_pipeline.monitoring import drift, nightly, records, textfile
from mlops_pipeline.monitoring.policy import Decision, NightFlags, RetrainPolicy, decide
from mlops_pipeline.usecases.loader import load_usecase
from mlops_pipeline.usecases.vocabulary import partition_from_key
from tests.conftest import prometheus_samples
from tests.ui.state import REGRESSION, REGRESSION_SHIFTED, write_usecases

DAY = dt.date(2025, 6, 2)
CHURN = get_settings().spec
CONFIG = drift.DriftConfig.from_spec(CHURN)
POLICY = RetrainPolicy.from_spec(CHURN)


def test_config_and_policy_come_from_the_declaration_alone():
    declared = CHURN.drift
    assert CONFIG.numerical == CHURN.numeric_features
    assert set(CONFIG.categorical) == {*CHURN.categorical_features, *CHURN.boolean_features}
    assert set(CONFIG.features) == set(CHURN.feature_columns)
    assert (CONFIG.numerical_method, CONFIG.share_threshold) == (
        declared.numerical_method,
        declared.share_threshold,
    )
    assert (POLICY.min_partition_rows, POLICY.cooldown_partitions) == (
        declared.min_partition_rows,
        declared.cooldown_partitions,
    )
    assert (
        POLICY.performance_metric == CHURN.primary_metric
        and POLICY.partition_length == dt.timedelta(days=1)
    )
    with pytest.raises(TypeError):
        drift.DriftConfig()  # type: ignore[call-arg]  # no defaults of its own
    with pytest.raises(TypeError):
        RetrainPolicy()  # type: ignore[call-arg]
    assert issubclass(drift.MonitoringDataError, PermanentFailure)


def test_reference_against_a_resample_of_itself_does_not_drift():
    reference = pd.concat(
        [generate_frame(CHURN, DAY + dt.timedelta(days=i), 20_000) for i in range(5)]
    )
    resample = reference.sample(n=100_000, replace=True, random_state=1)
    _, result = drift.run_drift(reference, resample, CONFIG)
    assert result.rows_reference == result.rows_current == 100_000
    assert result.drift_share == 0.0 and result.drifted_columns == []
    assert max(c["score"] for c in result.columns.values()) < CONFIG.numerical_threshold / 3


def test_covariate_drift_is_detected_on_the_shifted_columns():
    reference = generate_frame(CHURN, DAY, 5_000)
    shifted = generate_frame(CHURN, DAY + dt.timedelta(days=10), 5_000, scenario="covariate_drift")
    shifted["prediction"] = np.linspace(0, 1, len(shifted))
    reference["prediction"] = np.linspace(0, 0.8, len(reference))
    _, result = drift.run_drift(reference, shifted, CONFIG)
    assert set(result.drifted_columns) == {
        "monthly_charges",
        "avg_daily_usage_minutes",
        "support_tickets_30d",
        "contract_type",
    }
    assert result.drift_share == pytest.approx(4 / len(CONFIG.features))
    assert result.drift_share >= POLICY.drift_share_threshold
    assert result.columns["monthly_charges"]["method"] == "wasserstein"
    assert result.columns["contract_type"]["method"] == "jensenshannon"
    # The prediction is reported apart from the features and does not count in the share.
    assert "prediction" not in result.columns and result.prediction["score"] > 0


def test_per_column_overrides_of_the_declaration_reach_evidently():
    overrides = {
        "drift": {
            "column_methods": {"monthly_charges": "psi", "plan": "psi"},
            "column_thresholds": {"monthly_charges": 0.5},
        }
    }
    spec = load_usecase(CHURN.folder, overrides)
    config = drift.DriftConfig.from_spec(spec)
    assert config.column_methods == {"monthly_charges": "psi", "plan": "psi"}
    assert config.column_thresholds == {"monthly_charges": 0.5}
    frame = generate_frame(spec, DAY, 2_000)
    _, result = drift.run_drift(frame, frame, config)
    assert result.columns["monthly_charges"]["method"] == "psi"
    assert result.columns["monthly_charges"]["threshold"] == 0.5
    assert result.columns["plan"]["method"] == "psi"
    with pytest.raises(SpecError, match="not_a_column"):
        load_usecase(CHURN.folder, {"drift": {"column_methods": {"not_a_column": "psi"}}})


def test_a_frame_without_a_feature_cannot_be_checked():
    frame = generate_frame(CHURN, DAY, 200).drop(columns=CHURN.feature_columns[0])
    with pytest.raises(drift.MonitoringDataError, match=CHURN.feature_columns[0]):
        drift.run_drift(frame, frame, CONFIG)


def _nights(*flags: tuple[str, bool, bool]) -> dict[dt.date, Decision]:
    """(date, drifted, retrain requested) -> earlier nights' decisions."""
    return {
        partition_from_key(day): Decision(retrain=retrain, drifted=drifted)
        for day, drifted, retrain in flags
    }


DRIFTED = NightFlags(rows=20_000, drift_share=0.3, drifted_columns=["monthly_charges"])


def test_a_small_partition_never_requests_a_retrain():
    small = NightFlags(rows=50, drift_share=0.9, performance_drop=0.3)
    earlier = _nights(("2025-06-09", True, False), ("2025-06-08", True, False))
    decision = decide(dt.date(2025, 6, 10), small, earlier, POLICY)
    assert decision.retrain is False and decision.drifted is False
    assert "below the minimum 1000" in decision.reasons[0]


def test_k_of_n_nights_must_drift():
    night = dt.date(2025, 6, 10)
    one_blip = decide(night, DRIFTED, _nights(("2025-06-07", True, False)), POLICY)
    assert one_blip.retrain is False and one_blip.drifted is True
    assert one_blip.reasons[0].startswith("drifted on 1 of the last 3 nights")

    persistent = decide(night, DRIFTED, _nights(("2025-06-08", True, False)), POLICY)
    assert persistent.retrain is True
    assert persistent.nights_flagged == [dt.date(2025, 6, 8), dt.date(2025, 6, 10)]
    assert persistent.reasons[0].startswith("data drift: share 0.30 >= 0.20 (monthly_charges)")

    calm = NightFlags(rows=20_000, drift_share=0.05)
    assert decide(night, calm, _nights(("2025-06-09", True, False)), POLICY).retrain is False


def test_cooldown_holds_back_a_new_request_unless_performance_dropped_hard():
    night = dt.date(2025, 6, 10)
    earlier = _nights(("2025-06-09", True, False), ("2025-06-08", True, True))
    held = decide(night, DRIFTED, earlier, POLICY)
    assert held.retrain is False and held.last_request == dt.date(2025, 6, 8)
    assert held.reasons[0].startswith(
        "cooldown: retrain requested on 2025-06-08, 2 partition(s) ago"
    )

    later = decide(
        dt.date(2025, 6, 11), DRIFTED, {**earlier, **_nights(("2025-06-10", True, False))}, POLICY
    )
    assert later.retrain is True, "three partitions after the last request the cooldown is over"

    hard = NightFlags(rows=20_000, drift_share=0.0, performance_drop=0.15)
    overridden = decide(night, hard, earlier, POLICY)
    assert overridden.retrain is True and overridden.reasons[0].startswith("hard performance drop")
    assert "roc_auc" in overridden.reasons[0]


def test_a_weekly_use_case_counts_weeks_not_days():
    weekly = RetrainPolicy.from_spec(load_usecase(CHURN.folder, {"cadence": "weekly"}))
    assert weekly.partition_length == dt.timedelta(weeks=1)
    monday = dt.date(2025, 6, 16)
    # The day before is no partition of a weekly use case; the Monday before is.
    assert decide(monday, DRIFTED, _nights(("2025-06-15", True, False)), weekly).retrain is False
    persistent = decide(monday, DRIFTED, _nights(("2025-06-09", True, False)), weekly)
    assert persistent.retrain is True
    assert persistent.nights_flagged == [dt.date(2025, 6, 9), dt.date(2025, 6, 16)]
    held = decide(monday, DRIFTED, _nights(("2025-06-09", True, True)), weekly)
    assert held.reasons[0].startswith("cooldown: retrain requested on 2025-06-09, 1 partition")


def test_an_hourly_use_case_counts_hours_across_midnight():
    hourly = RetrainPolicy.from_spec(load_usecase(CHURN.folder, {"cadence": "hourly"}))
    assert hourly.partition_length == dt.timedelta(hours=1)
    first_hour = dt.datetime(2025, 6, 16, 0)
    assert hourly.partitions_back(first_hour, 3) == [
        first_hour,
        dt.datetime(2025, 6, 15, 23),
        dt.datetime(2025, 6, 15, 22),
    ]
    # The hour before (yesterday's last) counts towards persistence; the same hour a day
    # before does not.
    yesterday = _nights(("2025-06-15T00", True, False))
    assert decide(first_hour, DRIFTED, yesterday, hourly).retrain is False
    persistent = decide(first_hour, DRIFTED, _nights(("2025-06-15T23", True, False)), hourly)
    assert persistent.retrain is True
    assert persistent.nights_flagged == [dt.datetime(2025, 6, 15, 23), first_hour]
    held = decide(first_hour, DRIFTED, _nights(("2025-06-15T23", True, True)), hourly)
    assert held.reasons[0].startswith("cooldown: retrain requested on 2025-06-15T23, 1 partition")


def test_concept_drift_is_caught_by_performance_not_by_data_drift():
    from mlops_pipeline.training.model import train_model

    spec = load_usecase(
        CHURN.folder,
        {"training": {"min_train_rows": 500, "model": {"params": {"max_iter": 60}}}},
    )
    days = [DAY + dt.timedelta(days=i) for i in range(7)]
    history = drift.with_on_demand_features(
        spec, pd.concat([generate_frame(spec, d, 1_500) for d in days], ignore_index=True)
    )
    trained = train_model(spec, history)
    later = DAY + dt.timedelta(days=8)
    concept = drift.with_on_demand_features(
        spec, generate_frame(spec, later, 5_000, scenario="concept_drift")
    )
    stable = drift.with_on_demand_features(spec, generate_frame(spec, later, 5_000))
    assert set(spec.on_demand_features) <= set(stable.columns)

    def night(frame: pd.DataFrame) -> NightFlags:
        scores = _champion(spec, trained).scores(frame)
        performance = drift.performance(
            spec, frame[spec.label].to_numpy(), scores, trained.threshold, trained.metrics
        )
        assert performance["metric"] == "roc_auc" and performance["higher_is_better"]
        assert performance["drop"] == pytest.approx(
            trained.metrics["roc_auc"] - performance["value"]
        )
        _, result = drift.run_drift(trained.split.train, frame, CONFIG)
        return NightFlags(
            len(frame), result.drift_share, result.drifted_columns, performance["drop"]
        )

    drifted, control = night(concept), night(stable)
    assert drifted.data_drift(POLICY) is False and drifted.drift_share == control.drift_share == 0.0
    assert drifted.performance_dropped(POLICY) is True
    assert control.performance_dropped(POLICY) is False
    decision = decide(
        later, drifted, _nights((str(later - dt.timedelta(days=1)), True, False)), POLICY
    )
    assert decision.retrain is True
    assert [r.split(":")[0] for r in decision.reasons[:1]] in (
        ["performance"],
        ["hard performance drop"],
    )


# ---- a regression use case -----------------------------------------------------------------


@pytest.fixture
def regression(tmp_path, monkeypatch):
    """Settings of the regression use case, beside churn, in a fresh home."""
    root = write_usecases(tmp_path / "usecases")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(root))
    monkeypatch.setenv("MLOPS_USECASE", REGRESSION)
    return get_settings()


@pytest.fixture
def regression_model(regression):
    from mlops_pipeline.training.model import train_model

    spec = regression.spec
    days = [DAY + dt.timedelta(days=i) for i in range(7)]
    history = pd.concat([generate_frame(spec, d, 800) for d in days], ignore_index=True)
    return train_model(spec, history)


def _champion(spec, trained) -> LoadedVersion:
    return LoadedVersion(
        spec=spec,
        version="1",
        run_id="run-1",
        threshold=trained.threshold,
        model=trained.model,
        alias="champion",
        test_metrics=trained.metrics,
    )


def test_a_regression_night_drifts_on_its_shifted_numbers_and_its_own_metric(
    regression, regression_model
):
    spec, trained = regression.spec, regression_model
    config = drift.DriftConfig.from_spec(spec)
    policy = RetrainPolicy.from_spec(spec)
    assert config.numerical == ("floor_area", "temperature", "staff")
    assert config.categorical == ("district", "open_sunday")
    assert trained.threshold is None and {"r2", "rmse", "mae"} <= set(trained.metrics)
    later = DAY + dt.timedelta(days=8)
    stable = generate_frame(spec, later, 3_000)
    shifted = generate_frame(spec, later, 3_000, scenario="covariate_drift")
    concept = generate_frame(spec, later, 3_000, scenario="concept_drift")
    champion = _champion(spec, trained)

    _, calm = drift.run_drift(trained.split.train, stable, config)
    assert calm.drifted_columns == [] and calm.drift_share == 0.0
    _, moved = drift.run_drift(
        trained.split.train.assign(prediction=champion.scores(trained.split.train)),
        shifted.assign(prediction=champion.scores(shifted)),
        config,
    )
    assert set(moved.drifted_columns) == set(REGRESSION_SHIFTED)
    assert moved.drift_share == pytest.approx(3 / 5) and moved.drift_share >= 0.2
    assert moved.prediction["drifted"] is True, "shifted inputs move the predicted values"

    def check(frame: pd.DataFrame) -> dict:
        return drift.performance(
            spec, frame[spec.label].to_numpy(), champion.scores(frame), None, trained.metrics
        )

    control, broken = check(stable), check(concept)
    assert control["metric"] == broken["metric"] == spec.primary_metric == "r2"
    assert set(broken["metrics"]) >= {"rmse", "mae", "r2"}
    assert broken["drop"] == pytest.approx(trained.metrics["r2"] - broken["value"])
    assert control["drop"] < policy.performance_drop_threshold <= broken["drop"]
    flags = NightFlags(len(concept), 0.0, [], broken["drop"])
    yesterday = _nights((str(later - dt.timedelta(days=1)), True, False))
    decision = decide(later, flags, yesterday, policy)
    assert decision.retrain is True and "r2" in decision.reasons[0]


def test_an_error_metric_degrades_by_its_relative_increase(regression):
    rmse = next(g for g in regression.spec.gate_metrics if g.metric == "rmse")
    assert rmse.higher_is_better is False
    assert drift.degradation(rmse, 10.0, 12.0) == pytest.approx(0.2)
    assert drift.degradation(rmse, 10.0, 9.0) == pytest.approx(-0.1)
    r2 = next(g for g in regression.spec.gate_metrics if g.metric == "r2")
    assert drift.degradation(r2, 0.8, 0.7) == pytest.approx(0.1)
    assert drift.degradation(r2, None, 0.7) is None


def test_a_regression_night_end_to_end_beside_a_classifier(
    regression, regression_model, monkeypatch
):
    spec, trained = regression.spec, regression_model
    champion = _champion(spec, trained)
    reference = trained.split.train.assign(prediction=champion.scores(trained.split.train))
    monkeypatch.setattr(nightly, "load_champion", lambda settings, tracking: champion)
    monkeypatch.setattr(nightly, "reference_frame", lambda settings, tracking, c: reference)
    night = DAY + dt.timedelta(days=8)
    partition = storage.partition_dir(regression.lake_dir, night)
    partition.mkdir(parents=True)
    shifted = generate_frame(spec, night, 1_000, scenario="covariate_drift")
    shifted.to_parquet(partition / "part-0.parquet", index=False)
    # The model server's log of the night, in the generic keys.
    log = regression.predictions_dir / f"date={night.isoformat()}" / "predictions-1.jsonl"
    log.parent.mkdir(parents=True)
    lines = [{spec.entity.key: i, "score": 100.0 + i, "model_version": "1"} for i in range(150)]
    lines.append({spec.entity.key: 0, "score": 1.0, "model_version": "2"})
    log.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"half a li')

    record = nightly.run_nightly_check(regression, night, {"run_id": "manual__1"})
    assert record.status == records.CHECKED and record.usecase == REGRESSION
    assert set(REGRESSION_SHIFTED) <= set(record.drift.drifted_columns)
    assert record.performance.metric == "r2" and record.performance.rows == 1_000
    assert record.prediction.source == "prediction log"
    assert record.prediction.rows == 150
    assert record.prediction.mean_current == pytest.approx(100.0 + 149 / 2)
    assert records.read_record(regression, night) == record
    assert (records.night_dir(regression, night) / records.REPORT).exists()
    assert regression.drift_reports_dir.name == REGRESSION

    from mlops_pipeline.deployment import registry

    tracking = registry.client(regression)
    experiment = tracking.get_experiment_by_name(spec.monitoring_experiment)
    (run,) = tracking.search_runs([experiment.experiment_id])
    assert run.info.run_id == record.mlflow_run_id
    assert "r2" in run.data.metrics and "r2_drop" in run.data.metrics

    # The classifier's night beside it: each use case its own textfile, labelled by model.
    churn = regression.for_usecase("churn")
    storage.write_json(
        records.night_dir(churn, night) / records.SUMMARY,
        {
            "night": night.isoformat(),
            "status": records.CHECKED,
            "rows": 20_000,
            "drift": {"drift_share": 0.05, "columns": {}},
            "performance": {"metric": "roc_auc", "drop": 0.01},
            "decision": {"retrain": False},
        },
    )
    textfile.write_prometheus_textfile(churn)
    names = ("churn", REGRESSION)
    files = {name: textfile.prometheus_file(regression.for_usecase(name)) for name in names}
    assert files["churn"] != files[REGRESSION] and files["churn"].parent == files[REGRESSION].parent
    for name, path in files.items():
        model = regression.for_usecase(name).spec.model_name
        samples = prometheus_samples(path.read_text())
        assert samples and {labels["model"] for _, labels, _ in samples} == {model}
    regression_samples = prometheus_samples(files[REGRESSION].read_text())
    shares = {s[0]: s[2] for s in regression_samples if s[0] == "mlops_drift_share"}
    assert shares == {"mlops_drift_share": record.drift.drift_share}
    (drop,) = [s for s in regression_samples if s[0] == "mlops_champion_performance_drop"]
    assert drop[1]["metric"] == "r2" and drop[2] == pytest.approx(record.performance.drop)


def test_a_missing_partition_is_a_permanent_failure(regression):
    with pytest.raises(drift.MonitoringDataError, match="no validated partition for 2025-06-02"):
        drift.read_partition(regression, DAY)


def test_an_hourly_night_is_kept_and_exported_under_its_hour(settings):
    hourly = settings.replace(usecase_overrides='{"churn": {"cadence": "hourly"}}')
    hour = dt.datetime(2025, 6, 2, 5)
    storage.write_json(
        records.night_dir(hourly, hour) / records.SUMMARY,
        {
            "night": "2025-06-02T05",
            "status": records.CHECKED,
            "rows": 2_000,
            "drift": {"drift_share": 0.05, "columns": {}},
            "decision": {"retrain": False},
        },
    )
    assert records.night_dir(hourly, hour).name == "night=2025-06-02T05"
    assert records.recorded_nights(hourly) == [hour]
    assert records.latest_nights(hourly)[0]["night"] == "2025-06-02T05"
    textfile.write_prometheus_textfile(hourly)
    samples = prometheus_samples(textfile.prometheus_file(hourly).read_text())
    (stamp,) = [s for s in samples if s[0] == "mlops_drift_night_timestamp_seconds"]
    assert stamp[2] == dt.datetime(2025, 6, 2, 5, tzinfo=dt.UTC).timestamp()
