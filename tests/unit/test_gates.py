"""Property tests of the promotion gates, configured from the churn declaration."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.deployment.gates import GateConfig, MetricGate, Scores, evaluate_gates

CONFIG = GateConfig.from_spec(get_settings().for_usecase("churn").spec)
METRICS = {g.metric: g for g in CONFIG.metrics}


def _evaluate(challenger: Scores, champion: Scores | None):
    return evaluate_gates(challenger, champion, CONFIG)


def _metric() -> st.SearchStrategy[float]:
    return st.floats(0.01, 0.99, allow_nan=False)


scores_strategy = st.builds(
    lambda values, latency, size: Scores(
        metrics=values, p99_latency_ms=latency, model_size_mb=size
    ),
    st.fixed_dictionaries({name: _metric() for name in METRICS}),
    st.floats(0.0, 100.0),
    st.floats(0.0, 100.0),
)


def _worse(name: str, challenger: float, champion: float) -> float:
    gate = METRICS[name]
    return champion - challenger if gate.higher_is_better else challenger - champion


@settings(max_examples=400, deadline=None)
@given(challenger=scores_strategy, champion=scores_strategy)
def test_worse_beyond_the_margin_on_any_metric_is_never_promoted(challenger, champion):
    report = _evaluate(challenger, champion)
    for name, gate in METRICS.items():
        worse = _worse(name, challenger.metrics[name], champion.metrics[name])
        allowed = min(gate.max_abs_regression, gate.max_rel_regression * champion.metrics[name])
        if worse > allowed:
            assert not report.passed
            assert any(c.name == f"regression:{name}" for c in report.failures)


@settings(max_examples=200, deadline=None)
@given(scores=scores_strategy)
def test_a_tie_never_promotes(scores):
    report = _evaluate(scores, scores)
    assert not report.passed
    assert "improvement:roc_auc" in {c.name for c in report.failures}


@settings(max_examples=400, deadline=None)
@given(challenger=scores_strategy)
def test_the_first_model_promotes_exactly_when_it_clears_floors_and_budgets(challenger):
    report = _evaluate(challenger, None)
    clears = all(
        (challenger.metrics[g.metric] >= g.bound)
        if g.higher_is_better
        else (challenger.metrics[g.metric] <= g.bound)
        for g in CONFIG.metrics
    )
    within = (
        challenger.p99_latency_ms <= CONFIG.p99_latency_budget_ms
        and challenger.model_size_mb <= CONFIG.model_size_budget_mb
    )
    assert report.first_model and report.passed == (clears and within)


@settings(max_examples=200, deadline=None)
@given(
    champion=scores_strategy,
    gain=st.floats(0.001, 0.05),
    drop=st.floats(0.031, 0.3),
)
def test_a_segment_regressing_beyond_its_margin_blocks_promotion(champion, gain, drop):
    better = dict(champion.metrics)
    better["roc_auc"] = min(0.999, champion.metrics["roc_auc"] + gain)
    champion = Scores(metrics=champion.metrics, segments={"plan=basic": (5_000, 0.8)})
    challenger = Scores(metrics=better, segments={"plan=basic": (5_000, 0.8 - drop)})
    report = _evaluate(challenger, champion)
    assert "segment:plan=basic:roc_auc" in {c.name for c in report.failures}


def test_a_clearly_better_challenger_is_promoted():
    champion = Scores(metrics={"roc_auc": 0.78, "pr_auc": 0.48, "log_loss": 0.40, "brier": 0.125})
    challenger = Scores(
        metrics={"roc_auc": 0.80, "pr_auc": 0.50, "log_loss": 0.39, "brier": 0.122},
        p99_latency_ms=3.0,
        model_size_mb=1.2,
    )
    report = _evaluate(challenger, champion)
    assert report.passed and not report.first_model
    assert not report.reasons()


def test_an_incompatible_signature_is_never_promoted():
    scores = Scores(
        metrics={"roc_auc": 0.9, "pr_auc": 0.7, "log_loss": 0.3, "brier": 0.1},
        signature_compatible=False,
    )
    assert _evaluate(scores, None).reasons() == [
        "signature:serving_schema: inputs differ from the serving schema"
    ]


def test_the_gates_are_the_declared_ones():
    spec = get_settings().for_usecase("churn").spec
    assert CONFIG.primary_metric == spec.primary_metric == "roc_auc"
    assert [g.metric for g in CONFIG.metrics] == [g.metric for g in spec.gate_metrics]
    assert CONFIG.segment_min_rows == spec.gates.segment_min_rows
    with pytest.raises(TypeError):
        GateConfig()  # no defaults of its own: the spec is the one source


def test_the_latency_budget_is_declared_per_use_case():
    from mlops_pipeline.deployment.promotion import gate_config

    overrides = {"churn": {"gates": {"p99_latency_budget_ms": 250}}}
    config = gate_config(Settings(usecase="churn", usecase_overrides=json.dumps(overrides)))
    assert config.p99_latency_budget_ms == 250.0 and config.metrics == CONFIG.metrics
    slow = Scores(
        metrics={"roc_auc": 0.9, "pr_auc": 0.7, "log_loss": 0.3, "brier": 0.1},
        p99_latency_ms=200.0,
    )
    assert evaluate_gates(slow, None, config).passed
    assert not evaluate_gates(slow, None, gate_config(Settings(usecase="churn"))).passed


def test_unbounded_gates_render_and_only_compare_with_the_champion():
    config = GateConfig(
        metrics=(
            MetricGate(
                "rmse", False, math.inf, max_abs_regression=math.inf, max_rel_regression=0.03
            ),
            MetricGate(
                "mae", False, math.inf, max_abs_regression=math.inf, max_rel_regression=math.inf
            ),
        ),
        primary_metric="rmse",
        segment_max_abs_regression=0.03,
        segment_min_rows=500,
        p99_latency_budget_ms=50.0,
        model_size_budget_mb=50.0,
    )
    first = evaluate_gates(Scores(metrics={"rmse": 1e9, "mae": 1e9}), None, config)
    assert first.passed
    floor = next(c for c in first.checks if c.name == "floor:rmse")
    assert floor.threshold is None and floor.detail.endswith("(gated against the champion only)")
    json.dumps(first.to_dict(), allow_nan=False)  # no Infinity in decision records

    champion = Scores(metrics={"rmse": 10.0, "mae": 8.0})
    worse = evaluate_gates(Scores(metrics={"rmse": 10.4, "mae": 80.0}), champion, config)
    failed = {c.name: c for c in worse.failures}
    assert set(failed) == {"regression:rmse", "improvement:rmse"}
    assert "allowed 0.3000" in failed["regression:rmse"].detail
    mae = next(c for c in worse.checks if c.name == "regression:mae")
    assert mae.passed and mae.detail.endswith("allowed any")
    json.dumps(worse.to_dict(), allow_nan=False)
    better = evaluate_gates(Scores(metrics={"rmse": 9.0, "mae": 8.1}), champion, config)
    assert better.passed, better.reasons()
