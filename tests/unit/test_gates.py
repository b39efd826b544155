"""Property tests of the promotion gates, configured from the churn declaration (with a
protected attribute declared for the fairness gate)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.deployment.fairness import AttributeFairness, GroupValues
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
    from mlops_pipeline.deployment.evaluation import gate_config

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
        protected_attributes=(),
        fairness=MetricGate("mae_difference", False, math.inf, math.inf, 0.1),
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


GOOD = {"roc_auc": 0.80, "pr_auc": 0.50, "log_loss": 0.39, "brier": 0.122}
BETTER = {"roc_auc": 0.82, "pr_auc": 0.52, "log_loss": 0.38, "brier": 0.120}
EQUALIZED_ODDS = "fairness:region:equalized_odds_difference"


def _declaring(usecase: str, fairness: dict, attributes: tuple[str, ...]) -> GateConfig:
    overrides = {
        usecase: {"protected_attributes": list(attributes), "gates": {"fairness": fairness}}
    }
    settings = Settings(usecase=usecase, usecase_overrides=json.dumps(overrides))
    return GateConfig.from_spec(settings.spec)


def _region(disparity: float | None) -> dict[str, AttributeFairness]:
    groups = {
        "north": GroupValues(900, {"true_positive_rate": 0.7, "false_positive_rate": 0.1}),
        "south": GroupValues(800, {"true_positive_rate": 0.6, "false_positive_rate": 0.1}),
    }
    return {
        "region": AttributeFairness(
            "region",
            "equalized_odds_difference",
            disparity,
            groups if disparity is not None else {},
            {"east": "120 rows, fewer than 500"},
        )
    }


def _scores(metrics: dict[str, float], disparity: float | None) -> Scores:
    return Scores(metrics=metrics, fairness=_region(disparity))


def test_the_fairness_gate_is_the_declared_one_with_the_task_defaults():
    bounded = _declaring("churn", {"max_disparity": 0.1}, ("region",))
    assert bounded.protected_attributes == ("region",)
    assert bounded.fairness == MetricGate("equalized_odds_difference", False, 0.1, 0.02, math.inf)
    assert CONFIG.protected_attributes == ()
    assert not math.isfinite(CONFIG.fairness.bound), "no maximum unless declared"
    regressor = _declaring("store_demand", {}, ("store_format",))
    assert regressor.fairness == MetricGate("mae_difference", False, math.inf, math.inf, 0.1)


def test_a_disparity_above_the_declared_maximum_is_never_promoted():
    config = _declaring("churn", {"max_disparity": 0.1}, ("region",))
    first = evaluate_gates(_scores(GOOD, 0.15), None, config)
    assert [c.name for c in first.failures] == [EQUALIZED_ODDS]
    detail = first.failures[0].detail
    assert "0.1500 between groups north (900 rows), south (800 rows)" in detail
    assert "left out east: 120 rows, fewer than 500" in detail and "must be <= 0.1" in detail
    assert evaluate_gates(_scores(GOOD, 0.08), None, config).passed
    # The bound holds against a champion too, even one as unfair.
    report = evaluate_gates(_scores(BETTER, 0.15), _scores(GOOD, 0.15), config)
    assert [c.name for c in report.failures] == [EQUALIZED_ODDS]


@settings(max_examples=200, deadline=None)
@given(champion=st.floats(0.0, 0.5), growth=st.floats(-0.2, 0.2))
def test_a_disparity_growing_past_the_champions_beyond_the_margin_is_never_promoted(
    champion, growth
):
    config = _declaring("churn", {}, ("region",))
    challenger = max(champion + growth, 0.0)
    report = evaluate_gates(_scores(BETTER, challenger), _scores(GOOD, champion), config)
    check = next(c for c in report.checks if c.name == EQUALIZED_ODDS)
    assert check.passed == (challenger - champion <= 0.02)
    assert report.passed == check.passed, report.reasons()


def test_a_fairness_regression_explains_itself_in_the_report():
    config = _declaring("churn", {}, ("region",))
    report = evaluate_gates(_scores(BETTER, 0.08), _scores(GOOD, 0.05), config)
    assert report.reasons() == [
        f"{EQUALIZED_ODDS}: 0.0800 between groups north (900 rows), south (800 rows); left out "
        "east: 120 rows, fewer than 500; champion 0.0500: worse by 0.0300, allowed 0.0200"
    ]
    failed = report.failures[0]
    assert (failed.value, failed.threshold) == (0.08, pytest.approx(0.07))
    json.dumps(report.to_dict(), allow_nan=False)


def test_a_regressors_mae_gap_may_grow_by_a_share_of_the_champions():
    config = _declaring("store_demand", {}, ("store_format",))

    def scores(gap: float) -> Scores:
        result = AttributeFairness("store_format", "mae_difference", gap, {}, {})
        return Scores(
            metrics={"r2": 0.8, "rmse": 5.0, "mae": 4.0}, fairness={"store_format": result}
        )

    champion = scores(2.0)
    within = evaluate_gates(scores(2.15), champion, config)
    check = "fairness:store_format:mae_difference"
    assert next(c for c in within.checks if c.name == check).passed
    beyond = evaluate_gates(scores(2.25), champion, config)
    assert "allowed 0.2000" in next(c for c in beyond.failures if c.name == check).detail


def test_an_unmeasurable_attribute_is_reported_and_a_missing_result_fails():
    config = _declaring("churn", {"max_disparity": 0.1}, ("region",))
    first = evaluate_gates(_scores(GOOD, None), None, config)
    check = next(c for c in first.checks if c.name == EQUALIZED_ODDS)
    assert first.passed and check.value is None
    assert check.detail.startswith("not gated: fewer than two groups (groups none; left out east")
    missing = evaluate_gates(Scores(metrics=GOOD), None, config)
    assert missing.reasons() == [
        f"{EQUALIZED_ODDS}: not measured: the challenger has no result for it"
    ]
    # Without a maximum or a champion the disparity is only reported, with no infinite bound.
    unbounded = evaluate_gates(_scores(GOOD, 0.4), None, _declaring("churn", {}, ("region",)))
    check = next(c for c in unbounded.checks if c.name == EQUALIZED_ODDS)
    assert check.passed and check.threshold is None and "reported only" in check.detail
    json.dumps(unbounded.to_dict(), allow_nan=False)


def test_no_protected_attributes_means_no_fairness_checks_and_an_unchanged_report():
    champion = Scores(metrics=GOOD)
    plain = evaluate_gates(Scores(metrics=BETTER), champion, CONFIG)
    measured = evaluate_gates(_scores(BETTER, 0.9), _scores(GOOD, 0.0), CONFIG)
    assert measured.to_dict() == plain.to_dict()
    assert not any(c.name.startswith("fairness:") for c in measured.checks)


def test_the_live_shadow_gates_are_off_by_default_and_judge_count_errors_and_p99():
    import dataclasses

    from mlops_pipeline.deployment.gates import live_shadow_checks
    from mlops_pipeline.serving.shadow import ShadowSummary
    from mlops_pipeline.usecases.gate_spec import ShadowGateSpec

    summary = ShadowSummary("2", requests=120, rows=120, errors=0, p99_ms=4.0, agreement=0.9)
    assert live_shadow_checks(summary, CONFIG) == []
    on = dataclasses.replace(CONFIG, shadow=ShadowGateSpec(min_live_requests=100))
    assert all(c.passed for c in live_shadow_checks(summary, on))
    slow = dataclasses.replace(summary, p99_ms=CONFIG.p99_latency_budget_ms + 1)
    failed = {c.name for c in live_shadow_checks(slow, on) if not c.passed}
    assert failed == {"shadow_live_p99_ms"}
    assert {c.name for c in live_shadow_checks(None, on) if not c.passed} == {
        "shadow_live_requests",
        "shadow_live_p99_ms",
    }
    strict = dataclasses.replace(
        on, shadow=ShadowGateSpec(min_live_requests=100, max_live_p99_ms=3)
    )
    assert {c.name for c in live_shadow_checks(summary, strict) if not c.passed} == {
        "shadow_live_p99_ms"
    }
