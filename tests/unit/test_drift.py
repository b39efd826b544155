"""What the drift check measures (Evidently on generated days) and when it asks to retrain."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.data import contract
from mlops_pipeline.data.datagen import generate_frame
from mlops_pipeline.monitoring import drift
from mlops_pipeline.monitoring.nightly import NightFlags, RetrainPolicy, decide

DAY = dt.date(2025, 6, 2)
CONFIG = drift.DriftConfig()
POLICY = RetrainPolicy()


def test_reference_against_a_resample_of_itself_does_not_drift():
    reference = pd.concat([generate_frame(DAY + dt.timedelta(days=i), 20_000) for i in range(5)])
    resample = reference.sample(n=100_000, replace=True, random_state=1)
    _, result = drift.run_drift(reference, resample, CONFIG)
    assert result.rows_reference == result.rows_current == 100_000
    assert result.drift_share == 0.0 and result.drifted_columns == []
    assert max(c["score"] for c in result.columns.values()) < CONFIG.numerical_threshold / 3


def test_covariate_drift_is_detected_on_the_shifted_columns():
    reference = generate_frame(DAY, 5_000)
    shifted = generate_frame(DAY + dt.timedelta(days=10), 5_000, scenario="covariate_drift")
    shifted["prediction"] = np.linspace(0, 1, len(shifted))
    reference["prediction"] = np.linspace(0, 0.8, len(reference))
    _, result = drift.run_drift(reference, shifted, CONFIG)
    assert set(result.drifted_columns) == {
        "monthly_charges",
        "avg_daily_usage_minutes",
        "support_tickets_30d",
        "contract_type",
    }
    assert result.drift_share == pytest.approx(4 / len(drift.DRIFT_FEATURES))
    assert result.drift_share >= RetrainPolicy().drift_share_threshold
    assert result.columns["monthly_charges"]["method"] == "wasserstein"
    assert result.columns["contract_type"]["method"] == "jensenshannon"
    # The prediction is reported apart from the features and does not count in the share.
    assert "prediction" not in result.columns and result.prediction["score"] > 0


def test_per_column_overrides_reach_evidently():
    methods, thresholds = drift.parse_column_overrides("monthly_charges=psi:0.5, plan=psi")
    assert methods == {"monthly_charges": "psi", "plan": "psi"}
    assert thresholds == {"monthly_charges": 0.5}
    with pytest.raises(ValueError, match="column=method"):
        drift.parse_column_overrides("not_a_column=psi")
    config = drift.DriftConfig(per_column_method=methods, per_column_threshold=thresholds)
    frame = generate_frame(DAY, 2_000)
    _, result = drift.run_drift(frame, frame, config)
    assert result.columns["monthly_charges"]["method"] == "psi"
    assert result.columns["monthly_charges"]["threshold"] == 0.5


def _nights(*flags: tuple[str, bool, bool]) -> dict[dt.date, dict]:
    """(date, drifted, retrain requested) -> earlier night records."""
    return {
        dt.date.fromisoformat(day): {"decision": {"drifted": drifted, "retrain": retrain}}
        for day, drifted, retrain in flags
    }


DRIFTED = NightFlags(rows=20_000, drift_share=0.3, drifted_columns=["monthly_charges"])


def test_a_small_batch_never_requests_a_retrain():
    small = NightFlags(rows=50, drift_share=0.9, roc_auc_drop=0.3)
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
    assert persistent.nights_flagged == ["2025-06-08", "2025-06-10"]
    assert persistent.reasons[0].startswith("data drift: share 0.30 >= 0.20 (monthly_charges)")

    calm = NightFlags(rows=20_000, drift_share=0.05)
    assert decide(night, calm, _nights(("2025-06-09", True, False)), POLICY).retrain is False


def test_cooldown_holds_back_a_new_request_unless_performance_dropped_hard():
    night = dt.date(2025, 6, 10)
    earlier = _nights(("2025-06-09", True, False), ("2025-06-08", True, True))
    held = decide(night, DRIFTED, earlier, POLICY)
    assert held.retrain is False and held.last_request == "2025-06-08"
    assert held.reasons[0].startswith("cooldown: retrain requested on 2025-06-08, 2 day(s) ago")

    later = decide(
        dt.date(2025, 6, 11), DRIFTED, {**earlier, **_nights(("2025-06-10", True, False))}, POLICY
    )
    assert later.retrain is True, "three days after the last request the cooldown is over"

    hard = NightFlags(rows=20_000, drift_share=0.0, roc_auc_drop=0.15)
    overridden = decide(night, hard, earlier, POLICY)
    assert overridden.retrain is True and overridden.reasons[0].startswith("hard performance drop")


def test_concept_drift_is_caught_by_performance_not_by_data_drift(settings):
    from mlops_pipeline.training.model import TrainingParams, train_model

    days = [DAY + dt.timedelta(days=i) for i in range(7)]
    history = drift.with_on_demand_features(
        settings, pd.concat([generate_frame(d, 1_500) for d in days], ignore_index=True)
    )
    trained = train_model(history, TrainingParams(max_iter=60), min_train_rows=500)
    later = DAY + dt.timedelta(days=8)
    concept = drift.with_on_demand_features(
        settings, generate_frame(later, 5_000, scenario="concept_drift")
    )
    stable = drift.with_on_demand_features(settings, generate_frame(later, 5_000))

    def night(frame: pd.DataFrame) -> NightFlags:
        probabilities = trained.model.predict_proba(_inputs(frame))[:, 1]
        performance = drift.performance(
            frame[contract.LABEL].to_numpy(), probabilities, trained.threshold, trained.metrics
        )
        _, result = drift.run_drift(trained.split.train, frame, CONFIG)
        return NightFlags(
            len(frame), result.drift_share, result.drifted_columns, performance["roc_auc_drop"]
        )

    drifted, control = night(concept), night(stable)
    assert drifted.data_drift(POLICY) is False and drifted.drift_share == control.drift_share == 0.0
    assert drifted.performance_drop(POLICY) is True
    assert control.performance_drop(POLICY) is False
    decision = decide(
        later, drifted, _nights((str(later - dt.timedelta(days=1)), True, False)), POLICY
    )
    assert decision.retrain is True
    assert [r.split(":")[0] for r in decision.reasons[:1]] in (
        ["performance"],
        ["hard performance drop"],
    )


def _inputs(frame: pd.DataFrame) -> pd.DataFrame:
    from mlops_pipeline.training.model import model_inputs

    return model_inputs(frame)
