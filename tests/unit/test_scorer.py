"""The compiled scorer gives exactly the pipeline's scores (a calibrated or uncalibrated
classifier's probabilities, a regressor's predictions), or is not used."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mlops_pipeline.serving.scorer import (
    COMPILED_MAX_ROWS,
    CompiledScorer,
    PipelineScorer,
    UnsupportedModel,
    scorer_for,
    verification_sample,
)
from mlops_pipeline.training.model import train_model
from mlops_pipeline.usecases.spec import Kind, UseCaseSpec
from tests.unit.small_usecase import labelled_frame, small_declaration, small_spec


@pytest.fixture(
    scope="module",
    params=[
        ("binary_classification", "isotonic"),
        ("binary_classification", "sigmoid"),
        ("binary_classification", "none"),
        ("regression", "none"),
    ],
    ids=["isotonic", "sigmoid", "uncalibrated", "regressor"],
)
def trained(request):
    spec = small_spec(*request.param)
    return spec, train_model(spec, labelled_frame(spec)).model


@pytest.fixture(scope="module")
def regressor():
    spec = small_spec("regression", "none")
    return spec, train_model(spec, labelled_frame(spec)).model


@pytest.fixture(scope="module")
def calibrated():
    spec = small_spec("binary_classification", "isotonic")
    return spec, train_model(spec, labelled_frame(spec)).model


def test_compiled_equals_the_pipeline_on_realistic_and_broken_rows(trained):
    spec, model = trained
    sample = verification_sample(spec, rows=COMPILED_MAX_ROWS)
    compiled = CompiledScorer(model, spec).score(sample)
    np.testing.assert_array_equal(compiled, PipelineScorer(model, spec).score(sample))
    assert scorer_for(model, spec).kind == "compiled"


def test_the_regressor_scores_predicted_values(regressor):
    spec, model = regressor
    sample = verification_sample(spec, rows=16)
    scores = scorer_for(model, spec).score(sample)
    inputs = PipelineScorer(model, spec).score(sample)
    np.testing.assert_array_equal(scores, inputs)
    assert scores.dtype == np.float64 and np.ptp(scores) > 0  # values, not probabilities
    assert CompiledScorer(model, spec).calibrator is None


def _value(spec: UseCaseSpec, name: str):
    """Anything serving can meet in a column: the domain, missing, unknown, out of range."""
    kinds = {n: spec.column(n).kind for n in spec.feature_columns}
    kinds.update({"price_per_size": Kind.FLOAT, "busy": Kind.BOOL})
    if kinds[name] is Kind.CATEGORY:
        declared = spec.column(name).values or ("a", "b")
        return st.one_of(st.sampled_from(declared), st.none(), st.text(max_size=3))
    if kinds[name] is Kind.BOOL:
        return st.booleans()
    return st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))


def _rows(spec: UseCaseSpec):
    row = st.fixed_dictionaries({name: _value(spec, name) for name in spec.model_features})
    return st.lists(row, min_size=1, max_size=8)


def _columns(spec: UseCaseSpec, rows: list[dict]) -> dict[str, list]:
    return {name: [r[name] for r in rows] for name in spec.model_features}


CLASSIFIER = small_spec("binary_classification")
REGRESSOR = small_spec("regression", "none")


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows(CLASSIFIER))
def test_compiled_equals_the_pipeline_on_any_rows(calibrated, rows):
    spec, model = calibrated
    columns = _columns(spec, rows)
    np.testing.assert_array_equal(
        CompiledScorer(model, spec).score(columns), PipelineScorer(model, spec).score(columns)
    )


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows(REGRESSOR))
def test_compiled_regressor_equals_the_pipeline_on_any_rows(regressor, rows):
    spec, model = regressor
    columns = _columns(spec, rows)
    np.testing.assert_array_equal(
        CompiledScorer(model, spec).score(columns), PipelineScorer(model, spec).score(columns)
    )


def test_large_batches_go_to_the_tree_predictors_once_they_agree_with_the_pipeline(
    trained, monkeypatch
):
    spec, model = trained
    compiled = scorer_for(model, spec)
    assert compiled.kind == "compiled" and compiled.matrix_agrees
    large = verification_sample(spec, rows=COMPILED_MAX_ROWS + 1, seed=3)
    expected = PipelineScorer(model, spec).score(large)
    matrices = []
    exact = CompiledScorer.score_matrix
    monkeypatch.setattr(
        CompiledScorer, "score_matrix", lambda self, m: matrices.append(len(m)) or exact(self, m)
    )
    monkeypatch.setattr(compiled.pipeline, "score", lambda c: pytest.fail("the pipeline scored"))
    small = verification_sample(spec, rows=COMPILED_MAX_ROWS)
    assert len(compiled.score(small)) == COMPILED_MAX_ROWS and matrices == []
    np.testing.assert_array_equal(compiled.score(large), expected)
    assert matrices == [COMPILED_MAX_ROWS + 1]


def test_large_batches_go_to_the_pipeline_when_the_tree_predictors_disagree(trained, monkeypatch):
    spec, model = trained
    exact = CompiledScorer.score_matrix
    monkeypatch.setattr(CompiledScorer, "score_matrix", lambda self, m: exact(self, m) + 1e-6)
    compiled = scorer_for(model, spec)
    assert compiled.kind == "compiled" and not compiled.matrix_agrees
    calls = []
    monkeypatch.setattr(compiled.pipeline, "score", lambda c: calls.append(c) or "piped")
    large = verification_sample(spec, rows=COMPILED_MAX_ROWS + 1)
    assert compiled.score(large) == "piped" and len(calls) == 1


def test_a_compiled_scorer_that_disagrees_is_not_used(trained, monkeypatch):
    spec, model = trained
    exact = CompiledScorer.raw
    # The smallest disagreement that survives a calibrator's clipping is enough.
    monkeypatch.setattr(CompiledScorer, "raw", lambda self, m: exact(self, m) + 1e-6)
    assert scorer_for(model, spec).kind == "pipeline"


def test_other_model_shapes_are_scored_by_the_pipeline(calibrated, regressor):
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeRegressor

    spec, model = calibrated
    with pytest.raises(UnsupportedModel):
        CompiledScorer(model, regressor[0])  # a classifier declared as a regressor
    reg_spec, reg_model = regressor
    encode = reg_model.steps[0][1]
    frame = labelled_frame(reg_spec, rows=200)
    from mlops_pipeline.training.model import model_inputs

    tree = Pipeline([("encode", encode), ("model", DecisionTreeRegressor(max_depth=3))])
    tree.fit(model_inputs(reg_spec, frame), frame[reg_spec.label])
    with pytest.raises(UnsupportedModel):
        CompiledScorer(tree, reg_spec)
    scorer = scorer_for(tree, reg_spec)
    assert scorer.kind == "pipeline"
    assert scorer.score(verification_sample(reg_spec, rows=4)).shape == (4,)


def test_calibration_reproduces_the_calibrator_at_and_beyond_its_knots(calibrated):
    spec, model = calibrated
    compiled = CompiledScorer(model, spec)
    calibrator = compiled.calibrator
    assert compiled.calibrate is not calibrator.predict  # the fast path, not the fallback
    knots = getattr(calibrator, "X_thresholds_", np.array([-1.0, 0.0, 1.0]))
    raw = np.concatenate(
        [knots, knots + 1e-9, knots - 1e-9, [knots.min() - 50, knots.max() + 50, 0.0]]
    )
    np.testing.assert_array_equal(compiled.calibrate(raw), calibrator.predict(raw))


def test_the_verification_sample_covers_the_declared_domains():
    spec = CLASSIFIER
    sample = verification_sample(spec, rows=2_000, seed=5)
    assert list(sample) == list(spec.model_features)
    assert all(len(values) == 2_000 for values in sample.values())
    colours = set(sample["colour"])
    assert {"red", "green", "blue", None, "never-seen"} <= colours
    assert colours <= {"red", "green", "blue", None, "never-seen"}
    sizes = [v for v in sample["size"] if v is not None]
    assert all(isinstance(v, int) for v in sizes)
    inside = [v for v in sizes if 0 <= v <= 50]
    assert len(inside) > 0.9 * len(sizes) and min(sizes) < 0  # some below the declared min
    assert None in sample["temperature"] and None in sample["price_per_size"]
    assert {True, False} <= set(sample["promo"])
    # Deterministic for a seed.
    assert verification_sample(spec, rows=50, seed=5) == verification_sample(spec, 50, 5)


def test_a_model_without_category_inputs_is_compiled():
    declaration = small_declaration("binary_classification")
    for name in ("colour", "channel"):
        del declaration["columns"][name]
    declaration["features"]["views"]["shop_facts"]["features"] = [
        f
        for f in declaration["features"]["views"]["shop_facts"]["features"]
        if f not in ("colour", "channel")
    ]
    spec = UseCaseSpec.model_validate(declaration)
    frame = labelled_frame(small_spec("binary_classification")).drop(columns=["colour", "channel"])
    model = train_model(spec, frame).model
    sample = verification_sample(spec, rows=COMPILED_MAX_ROWS)
    scorer = scorer_for(model, spec)
    assert scorer.kind == "compiled"
    np.testing.assert_array_equal(scorer.score(sample), PipelineScorer(model, spec).score(sample))


def _lake_table(sample: dict[str, list]):
    """``sample`` as batch scoring reads the lake: strings dictionary-encoded, nulls for
    missing values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {}
    for name, values in sample.items():
        array = pa.array(values, from_pandas=True)
        columns[name] = pc.dictionary_encode(array) if pa.types.is_string(array.type) else array
    return pa.table(columns)


def _batch_scorer(spec: UseCaseSpec, model):
    from mlops_pipeline.deployment.loading import LoadedVersion
    from mlops_pipeline.scoring.batch import Scorer

    loaded = LoadedVersion(spec=spec, version="1", run_id="run-1", threshold=None, model=model)
    return Scorer(model=loaded, feature_service="service")


def test_batch_scoring_from_arrow_equals_the_pipeline_bit_for_bit(trained, monkeypatch):
    from mlops_pipeline.scoring import batch

    spec, model = trained
    sample = verification_sample(spec, rows=5_000, seed=5)
    monkeypatch.setattr(batch, "PREDICT_CHUNK_ROWS", 1_500)
    scored = []
    exact = CompiledScorer.score_matrix
    monkeypatch.setattr(
        CompiledScorer, "score_matrix", lambda self, m: scored.append(len(m)) or exact(self, m)
    )
    scores = batch.feature_scores(spec, _batch_scorer(spec, model), _lake_table(sample))
    np.testing.assert_array_equal(scores, PipelineScorer(model, spec).score(sample))
    # Every chunk went through the batch entry point, after its agreement checks.
    assert scored[-4:] == [1_500, 1_500, 1_500, 500]


def test_a_batch_path_that_disagrees_leaves_the_scoring_to_the_pipeline(trained, monkeypatch):
    from mlops_pipeline.scoring import batch

    spec, model = trained
    sample = verification_sample(spec, rows=3_000, seed=6)
    exact = CompiledScorer.score_matrix
    monkeypatch.setattr(CompiledScorer, "score_matrix", lambda self, m: exact(self, m) + 1e-6)
    scores = batch.feature_scores(spec, _batch_scorer(spec, model), _lake_table(sample))
    np.testing.assert_array_equal(scores, PipelineScorer(model, spec).score(sample))
