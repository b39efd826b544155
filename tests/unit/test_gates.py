"""Property tests of the promotion gates."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_pipeline.deployment.gates import DEFAULT_GATES, Scores, evaluate_gates

METRICS = {g.metric: g for g in DEFAULT_GATES.metrics}


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
    report = evaluate_gates(challenger, champion)
    for name, gate in METRICS.items():
        worse = _worse(name, challenger.metrics[name], champion.metrics[name])
        allowed = min(gate.max_abs_regression, gate.max_rel_regression * champion.metrics[name])
        if worse > allowed:
            assert not report.passed
            assert any(c.name == f"regression:{name}" for c in report.failures)


@settings(max_examples=200, deadline=None)
@given(scores=scores_strategy)
def test_a_tie_never_promotes(scores):
    report = evaluate_gates(scores, scores)
    assert not report.passed
    assert "improvement:roc_auc" in {c.name for c in report.failures}


@settings(max_examples=400, deadline=None)
@given(challenger=scores_strategy)
def test_the_first_model_promotes_exactly_when_it_clears_floors_and_budgets(challenger):
    report = evaluate_gates(challenger, None)
    clears = all(
        (challenger.metrics[g.metric] >= g.bound)
        if g.higher_is_better
        else (challenger.metrics[g.metric] <= g.bound)
        for g in DEFAULT_GATES.metrics
    )
    within = (
        challenger.p99_latency_ms <= DEFAULT_GATES.p99_latency_budget_ms
        and challenger.model_size_mb <= DEFAULT_GATES.model_size_budget_mb
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
    report = evaluate_gates(challenger, champion)
    assert "segment:plan=basic:roc_auc" in {c.name for c in report.failures}


def test_a_clearly_better_challenger_is_promoted():
    champion = Scores(metrics={"roc_auc": 0.78, "pr_auc": 0.48, "log_loss": 0.40, "brier": 0.125})
    challenger = Scores(
        metrics={"roc_auc": 0.80, "pr_auc": 0.50, "log_loss": 0.39, "brier": 0.122},
        p99_latency_ms=3.0,
        model_size_mb=1.2,
    )
    report = evaluate_gates(challenger, champion)
    assert report.passed and not report.first_model
    assert not report.reasons()


def test_an_incompatible_signature_is_never_promoted():
    scores = Scores(
        metrics={"roc_auc": 0.9, "pr_auc": 0.7, "log_loss": 0.3, "brier": 0.1},
        signature_compatible=False,
    )
    assert evaluate_gates(scores, None).reasons() == [
        "signature:serving_schema: inputs differ from the serving schema"
    ]


def test_the_latency_budget_is_set_per_deployment():
    from mlops_pipeline.config import Settings
    from mlops_pipeline.deployment.promotion import gate_config

    config = gate_config(Settings.from_env({"MLOPS_P99_LATENCY_BUDGET_MS": "250"}))
    assert config.p99_latency_budget_ms == 250.0 and config.metrics == DEFAULT_GATES.metrics
    slow = Scores(
        metrics={"roc_auc": 0.9, "pr_auc": 0.7, "log_loss": 0.3, "brier": 0.1},
        p99_latency_ms=200.0,
    )
    assert evaluate_gates(slow, None, config).passed
    assert not evaluate_gates(slow, None, gate_config(Settings())).passed
