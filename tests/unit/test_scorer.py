"""The compiled scorer gives exactly the pipeline's probabilities, or is not used."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mlops_pipeline.data import contract
from mlops_pipeline.serving.scorer import (
    COMPILED_MAX_ROWS,
    CompiledScorer,
    PipelineScorer,
    UnsupportedModel,
    scorer_for,
    verification_sample,
)
from mlops_pipeline.training.model import MODEL_FEATURES, TrainingParams, train_model
from tests.unit.test_training import training_frame


@pytest.fixture(scope="module")
def frame():
    return training_frame(rows=600)


@pytest.fixture(scope="module", params=["isotonic", "sigmoid"])
def model(request, frame):
    params = TrainingParams(max_iter=40, calibration=request.param)
    return train_model(frame, params, min_train_rows=100).model


def test_compiled_equals_the_pipeline_on_realistic_and_broken_rows(model):
    sample = verification_sample(rows=COMPILED_MAX_ROWS)
    compiled = CompiledScorer(model).predict_proba(sample)
    np.testing.assert_array_equal(compiled, PipelineScorer(model).predict_proba(sample))
    assert scorer_for(model).kind == "compiled"


def _value(name: str):
    if name in contract.CATEGORICAL_FEATURES:
        return st.one_of(
            st.sampled_from(contract.column(name).values), st.none(), st.text(max_size=3)
        )
    if name in contract.BOOLEAN_FEATURES:
        return st.booleans()
    return st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))


_row = st.fixed_dictionaries({name: _value(name) for name in MODEL_FEATURES})


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_row, min_size=1, max_size=8))
def test_compiled_equals_the_pipeline_on_any_rows(model, rows):
    columns = {name: [r[name] for r in rows] for name in MODEL_FEATURES}
    np.testing.assert_array_equal(
        CompiledScorer(model).predict_proba(columns), PipelineScorer(model).predict_proba(columns)
    )


def test_large_batches_go_to_the_pipeline(model, monkeypatch):
    compiled = CompiledScorer(model)
    calls = []
    monkeypatch.setattr(compiled.pipeline, "predict_proba", lambda c: calls.append(c) or "piped")
    small = verification_sample(rows=COMPILED_MAX_ROWS)
    assert len(compiled.predict_proba(small)) == COMPILED_MAX_ROWS and calls == []
    large = verification_sample(rows=COMPILED_MAX_ROWS + 1)
    assert compiled.predict_proba(large) == "piped" and len(calls) == 1


def test_a_compiled_scorer_that_disagrees_is_not_used(model, monkeypatch):
    exact = CompiledScorer.raw
    monkeypatch.setattr(CompiledScorer, "raw", lambda self, m: exact(self, m) + 1e-6)
    assert scorer_for(model).kind == "pipeline"


def test_other_model_shapes_are_scored_by_the_pipeline(model):
    uncalibrated = model.calibrated_classifiers_[0].estimator.estimator
    with pytest.raises(UnsupportedModel):
        CompiledScorer(uncalibrated)
    scorer = scorer_for(uncalibrated)
    assert scorer.kind == "pipeline"
    sample = verification_sample(rows=4)
    assert scorer.predict_proba(sample).shape == (4,)


def test_calibration_reproduces_the_calibrator_at_and_beyond_its_knots(model):
    compiled = CompiledScorer(model)
    calibrator = compiled.calibrator
    assert compiled.calibrate is not calibrator.predict  # the fast path, not the fallback
    knots = getattr(calibrator, "X_thresholds_", np.array([-1.0, 0.0, 1.0]))
    raw = np.concatenate(
        [knots, knots + 1e-9, knots - 1e-9, [knots.min() - 50, knots.max() + 50, 0.0]]
    )
    np.testing.assert_array_equal(compiled.calibrate(raw), calibrator.predict(raw))
