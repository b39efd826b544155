"""The human approval step of a promotion (one of the few modules that import Airflow).

Airflow's ``HITLBranchOperator`` shows the gate report in the UI's Required Actions and
branches on the answer; this subclass also keeps *who* answered, for the decision record.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator

APPROVE = "Approve"
REJECT = "Reject"


class PromotionApproval(HITLBranchOperator):
    def __init__(self, *, promote_task_id: str, reject_task_id: str, **kwargs: Any) -> None:
        super().__init__(
            options=[APPROVE, REJECT],
            options_mapping={APPROVE: promote_task_id, REJECT: reject_task_id},
            multiple=False,
            **kwargs,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        # Before branching: the branch signals the skips by raising, so nothing after it runs.
        if event.get("chosen_options"):
            context["ti"].xcom_push(key="answer", value=answer_summary(event))
        return super().execute_complete(context=context, event=event)


def answer_summary(event: dict[str, Any]) -> dict[str, Any]:
    user = event.get("responded_by_user") or {}
    return {
        "chosen": list(event.get("chosen_options") or []),
        "by": user.get("name") or user.get("id") or "unknown user",
        "at": str(event.get("responded_at") or ""),
    }
