"""The DAGs' notifications through Airflow itself (``dag.test()``): a promotion waiting for
approval and a task that fails reach a local webhook receiver (MLOPS_NOTIFY_URL), each as it
happens; every task of every DAG carries the failure notifier."""

from __future__ import annotations

import threading
import time

from mlops_pipeline.orchestration.notifications import (
    APPROVAL_PENDING,
    PROMOTED,
    ROLLED_BACK,
    TASK_FAILED,
    PlatformNotifier,
)
from mlops_pipeline.serving.process import free_port
from tests.e2e.helpers import answer_pending_approval
from tests.e2e.test_deploy_dag import GOOD, MODEL, _train
from tests.webhook_receiver import json_receiver

# Longest the reviewer waits for the approval's notification before answering anyway (so a
# missing notification fails the test instead of leaving the run waiting for days).
NOTIFICATION_WAIT_SECONDS = 60


def _reviewer_after_notification(received: list[dict]) -> tuple[threading.Thread, list[str]]:
    """Approves once the pending approval has been announced, not before."""
    seen: list[str] = []

    def review() -> None:
        deadline = time.monotonic() + NOTIFICATION_WAIT_SECONDS
        announced = False
        while time.monotonic() < deadline and not announced:
            announced = any(e["event"] == "approval_pending" for e in received)
            time.sleep(0.2)
        option = "Approve" if announced else "Reject"
        while time.monotonic() < deadline + 30:
            if answer_pending_approval("churn__deploy", "approve", option, "alice"):
                seen.append(option)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=review, daemon=True)
    thread.start()
    return thread, seen


def test_a_pending_approval_and_a_failing_promotion_notify(runner, lake, monkeypatch):
    server, received = json_receiver()
    monkeypatch.setenv("MLOPS_NOTIFY_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("MLOPS_REQUIRE_APPROVAL", "true")
    # Nobody serves the model: the approved promotion's smoke test fails, the task with it.
    monkeypatch.setenv("MLOPS_SERVING_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLOPS_SMOKE_TIMEOUT_SECONDS", "2")
    try:
        _train(lake, GOOD, "first")
        reviewer, answered = _reviewer_after_notification(received)
        run = runner.run_dag("churn__deploy", conf={"version": "1"})
        reviewer.join(timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert answered == ["Approve"], f"no approval was announced: {received}"
    assert str(run.state) == "failed", runner.task_states(run)
    pending, failed = received
    assert (pending["event"], pending["task_id"], pending["model"]) == (
        "approval_pending",
        "approve",
        MODEL,
    )
    assert pending["subject"] == f"Promote {MODEL} v1 to champion?"
    assert (failed["event"], failed["task_id"], failed["run_id"]) == (
        "task_failed",
        "promote",
        pending["run_id"],
    )
    assert "promotion of v1 rolled back" in failed["error"]


def test_promotions_and_rollbacks_notify_on_success(runner):
    """Their success runs are the deploy and rollback tests' (tests/e2e/test_deploy_dag.py);
    here, that those tasks carry the notifier (tests/unit/test_notifications.py sends it)."""
    bag = runner.dagbag()
    tasks = {
        "promote": bag.get_dag("churn__deploy").get_task("promote"),
        "roll_back": bag.get_dag("churn__rollback").get_task("roll_back"),
    }
    events = {
        name: [c.event for c in task.on_success_callback if isinstance(c, PlatformNotifier)]
        for name, task in tasks.items()
    }
    assert events == {"promote": [PROMOTED], "roll_back": [ROLLED_BACK]}
    approve = bag.get_dag("churn__deploy").get_task("approve")
    assert [n.event for n in approve.notifiers] == [APPROVAL_PENDING]
    for dag_id in bag.dag_ids:
        for task in bag.get_dag(dag_id).tasks:
            failure = [c.event for c in task.on_failure_callback if isinstance(c, PlatformNotifier)]
            assert failure == [TASK_FAILED], (dag_id, task.task_id)
