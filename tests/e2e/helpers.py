"""Reading Airflow's metadata database in end-to-end tests."""

from __future__ import annotations

from airflow.sdk.timezone import utcnow


def answer_pending_approval(dag_id: str, task_id: str, option: str, user: str) -> bool:
    """Answer a waiting human-in-the-loop task the way Airflow's HITL REST API does (record the
    response on the HITL detail, then resume the parked task). Returns whether one was waiting.
    """
    from airflow.models.hitl import HITLDetail, HITLUser
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        pending = (
            session.query(HITLDetail)
            .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
            .filter(
                TaskInstance.dag_id == dag_id,
                TaskInstance.task_id == task_id,
                HITLDetail.responded_at.is_(None),
            )
            .first()
        )
        if pending is None:
            return False
        ti = session.get(TaskInstance, pending.ti_id)
        if ti.state not in (TaskInstanceState.AWAITING_INPUT, TaskInstanceState.DEFERRED):
            return False
        pending.responded_by = HITLUser(id=user, name=user)
        pending.responded_at = utcnow()
        pending.chosen_options = [option]
        pending.params_input = {}
        session.add(pending)
        handle_event_submit(
            TriggerEvent(pending.as_resume_event_payload()), task_instance=ti, session=session
        )
    return True
