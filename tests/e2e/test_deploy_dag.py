"""Gated deployment and rollback through Airflow, on the embedded MLflow registry."""

from __future__ import annotations

import json
import threading
import time

from mlops_pipeline.deployment import promotion as deployment
from mlops_pipeline.deployment import registry
from mlops_pipeline.deployment.decisions import DECISIONS_ARTIFACTS
from mlops_pipeline.platform.status import platform_status
from mlops_pipeline.serving.process import free_port
from mlops_pipeline.training.job import TrainingRequest, train_and_register
from tests.e2e.conftest import DAYS, FAST, merged
from tests.e2e.helpers import answer_pending_approval

MODEL = "churn-classifier"
GOOD = FAST
# Nearly constant scores: clearly worse than any real model, and below the quality floors.
BAD = merged(
    FAST,
    {
        "churn": {
            "training": {
                "model": {"params": {"max_iter": 10, "learning_rate": 0.001, "max_leaf_nodes": 2}}
            }
        }
    },
)


def _train(settings, declarations, reason):
    trained = settings.replace(usecase_overrides=json.dumps(declarations))
    return train_and_register(trained, TrainingRequest(DAYS[-1], reason=reason))


def _alias(tracking, alias):
    found = registry.version_for_alias(tracking, MODEL, alias)
    return str(found.version) if found else None


def _records(settings):
    folder = settings.decisions_dir
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_good_challenger_is_promoted_and_a_worse_one_rejected(runner, lake):
    tracking = registry.client(lake)
    assert _train(lake, GOOD, "first").version == "1"
    run = runner.run_dag("churn__deploy", conf={"version": "1"})
    states = runner.task_states(run)
    assert str(run.state) == "success", states
    assert (states["promote"], states["reject"]) == ("success", "skipped")
    # No Docker deploy target unless MLOPS_MODEL_SERVER_CONTAINER names one.
    assert states["restart_model_server"] == "skipped"
    assert _alias(tracking, registry.CHAMPION) == "1"
    (record,) = _records(lake)
    assert record["outcome"] == "promoted" and record["evaluation"]["gates"]["first_model"]
    assert record["evaluation"]["champion"] is None
    assert record["airflow"]["run_id"] == run.run_id
    logged = {
        a.path
        for a in tracking.list_artifacts(
            record["evaluation"]["challenger"]["run_id"], DECISIONS_ARTIFACTS
        )
    }
    assert len(logged) == 2, "JSON and Markdown decision records are on the challenger's run"

    assert _train(lake, BAD, "bad on purpose").version == "2"
    run = runner.run_dag("churn__deploy", conf={"version": "2"})
    states = runner.task_states(run)
    assert (states["promote"], states["reject"]) == ("skipped", "success")
    assert _alias(tracking, registry.CHAMPION) == "1", "a rejected challenger leaves the champion"
    rejected = _records(lake)[-1]
    assert rejected["outcome"] == "rejected"
    evaluation = rejected["evaluation"]
    assert evaluation["champion"]["version"] == "1"
    failed = {c["name"] for c in evaluation["gates"]["checks"] if not c["passed"]}
    assert {"regression:roc_auc", "improvement:roc_auc"} <= failed
    version = tracking.get_model_version(MODEL, "2")
    assert version.tags["mlops.decision"] == "rejected"
    assert "regression:roc_auc" in version.tags["mlops.decision_reasons"]
    models = platform_status(lake)["models"]
    assert models["aliases"] == {"champion": "1", "challenger": "2", "previous_champion": None}
    assert [d["outcome"] for d in models["last_decisions"]] == ["rejected", "promoted"]
    # Both models were scored on the same frozen holdout.
    assert evaluation["holdout"]["rows"] == 3 * 800
    assert [p["date"] for p in evaluation["holdout"]["partitions"]] == [
        d.isoformat() for d in DAYS[-3:]
    ]


def test_rollback_restores_the_previous_version(runner, lake):
    tracking = registry.client(lake)
    _train(lake, GOOD, "first")
    _train(lake, GOOD, "second")
    deployment.promote(lake, "1")
    assert deployment.promote(lake, "2") == {"champion": "2", "previous_champion": "1"}

    run = runner.run_dag("churn__rollback", conf={"reason": "test rollback"})
    assert str(run.state) == "success", runner.task_states(run)
    assert (_alias(tracking, registry.CHAMPION), _alias(tracking, registry.PREVIOUS_CHAMPION)) == (
        "1",
        "2",
    )
    record = _records(lake)[-1]
    assert (record["action"], record["version"]) == ("rollback", "1")
    assert record["reasons"] == ["test rollback"]

    # Rolling back to the champion itself is refused, and changes nothing.
    run = runner.run_dag("churn__rollback", conf={"target": "1"})
    assert str(run.state) == "failed"
    assert _alias(tracking, registry.CHAMPION) == "1"


def test_a_failing_smoke_test_rolls_the_promotion_back(runner, lake, monkeypatch):
    monkeypatch.setenv("MLOPS_SERVING_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    monkeypatch.setenv("MLOPS_SMOKE_TIMEOUT_SECONDS", "2")
    tracking = registry.client(lake)
    _train(lake, GOOD, "first")
    run = runner.run_dag("churn__deploy", conf={"version": "1"})
    assert str(run.state) == "failed"
    assert runner.task_states(run)["promote"] == "failed"
    assert _alias(tracking, registry.CHAMPION) is None, "the first model's promotion is undone"
    record = _records(lake)[-1]
    assert record["outcome"] == "rolled back (smoke test failed)"
    assert "did not serve version 1" in record["reasons"][0]
    assert tracking.get_model_version(MODEL, "1").tags["mlops.decision"].startswith("rolled back")


def _approve_in_background(option: str, user: str) -> tuple[threading.Thread, list[str]]:
    """A reviewer who answers the pending approval as soon as it appears."""
    seen: list[str] = []

    def reviewer() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if answer_pending_approval("churn__deploy", "approve", option, user):
                seen.append(option)
                return
            time.sleep(0.5)

    thread = threading.Thread(target=reviewer, daemon=True)
    thread.start()
    return thread, seen


def test_required_approval_promotes_only_after_a_human_approves(runner, lake, monkeypatch):
    monkeypatch.setenv("MLOPS_REQUIRE_APPROVAL", "true")
    tracking = registry.client(lake)
    _train(lake, GOOD, "first")
    reviewer, answered = _approve_in_background("Approve", "alice")
    run = runner.run_dag("churn__deploy", conf={"version": "1"})
    reviewer.join(timeout=5)
    states = runner.task_states(run)
    assert answered == ["Approve"], f"the run never waited for approval: {states}"
    assert str(run.state) == "success", states
    assert (states["approve"], states["auto_approve"], states["promote"]) == (
        "success",
        "skipped",
        "success",
    )
    assert _alias(tracking, registry.CHAMPION) == "1"
    record = _records(lake)[-1]
    assert record["outcome"] == "promoted" and record["decided_by"].startswith("alice")


def test_an_approver_can_reject_a_passing_challenger(runner, lake, monkeypatch):
    monkeypatch.setenv("MLOPS_REQUIRE_APPROVAL", "true")
    tracking = registry.client(lake)
    _train(lake, GOOD, "first")
    reviewer, answered = _approve_in_background("Reject", "bob")
    run = runner.run_dag("churn__deploy", conf={"version": "1"})
    reviewer.join(timeout=5)
    states = runner.task_states(run)
    assert answered == ["Reject"]
    assert (states["promote"], states["record_approver_rejection"]) == ("skipped", "success")
    assert _alias(tracking, registry.CHAMPION) is None
    record = _records(lake)[-1]
    assert record["outcome"] == "rejected" and record["reasons"][0].startswith("rejected by bob")
    assert tracking.get_model_version(MODEL, "1").tags["mlops.decision"] == "rejected"


def test_the_shadow_gates_block_a_failing_live_shadow_and_too_many_flips(runner, lake, override):
    """With `gates.shadow` on, the challenger is judged beside the champion on real inputs: the
    newest scored partition (batch shadow) and the model server's live shadow log."""
    from mlops_pipeline.scoring.batch import score_partition

    _train(lake, GOOD, "first")
    deployment.promote(lake, "1")
    score_partition(lake, DAYS[-1])
    _train(lake, BAD, "flips decisions")  # v2: near-constant scores flip many decisions
    key = lake.spec.entity.key
    answered = {"model_version": "2", "request": "a", "ts": "t", key: 1, "score": 0.4}
    answered |= {"latency_ms": 1.0, "champion_score": 0.3, "champion_version": "1"}
    failed = {"model_version": "2", "request": "b", "rows": 1, "error": "KeyError: 'x'"}
    shadow_day = lake.shadow_predictions_dir / f"date={DAYS[-1].isoformat()}"
    shadow_day.mkdir(parents=True)
    (shadow_day / "predictions-1.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in (answered, failed))
    )
    shadow_gates = {"max_flip_share": 0.0, "min_live_requests": 1, "max_live_errors": 0}
    override({"churn": {"gates": {"shadow": shadow_gates}}})

    run = runner.run_dag("churn__deploy", conf={"version": "2"})
    assert runner.task_states(run)["reject"] == "success"
    evaluation = _records(lake)[-1]["evaluation"]
    checks = {c["name"]: c for c in evaluation["gates"]["checks"]}
    assert not checks["shadow_flip_share"]["passed"] and checks["shadow_flip_share"]["value"] > 0
    assert checks["shadow_live_requests"]["passed"]  # one request scored
    assert not checks["shadow_live_errors"]["passed"]  # and one failed
    assert evaluation["shadow"]["date"] == DAYS[-1].isoformat()
    assert evaluation["live_shadow"]["errors"] == 1
    documents = [p.read_text() for p in lake.decisions_dir.glob("*.md")]
    assert any("Live shadow: 1 requests, 1 failed" in text for text in documents)
