"""The tasks' retry budget: Airflow's own wait before each retry stays within what
``worst_case_seconds`` counts, and the backoff really grows."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

from mlops_pipeline.orchestration.retry_policy import (
    local_tasks,
    retrying_tasks,
    worst_case_seconds,
)

END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def airflow_waits(default_args: dict, task_id: str) -> list[float]:
    """The seconds Airflow's scheduler waits before each retry of one task instance (its own
    ``TaskInstance.next_retry_datetime``, on a stand-in holding only what it reads)."""
    from airflow.models.taskinstance import TaskInstance

    task = SimpleNamespace(
        retry_delay=default_args["retry_delay"],
        retry_exponential_backoff=default_args.get("retry_exponential_backoff", 0),
        max_retry_delay=default_args.get("max_retry_delay"),
    )
    waits = []
    for try_number in range(1, default_args["retries"] + 1):
        instance = SimpleNamespace(
            retry_delay_override=None,
            task=task,
            try_number=try_number,
            dag_id="dag",
            task_id=task_id,
            logical_date=END,
            end_date=END,
            log=logging.getLogger(__name__),
        )
        waits.append((TaskInstance.next_retry_datetime(instance) - END).total_seconds())  # type: ignore[arg-type]
    return waits


def test_the_service_tasks_back_off_and_their_budget_bounds_airflow():
    args = retrying_tasks("owner")
    for task_id in ("train", "deploy", "materialize", "check"):
        waits = airflow_waits(args, task_id)
        assert waits[0] < waits[1] < waits[2], f"the waits grow: {waits}"
        assert sum(waits) <= worst_case_seconds(args, 0)
    # `True` is a multiplier of 1 to Airflow: the waits would not grow.
    assert len(set(airflow_waits({**args, "retry_exponential_backoff": True}, "train"))) == 1


def test_worst_case_counts_every_attempt_and_every_wait():
    args = retrying_tasks("owner")
    assert worst_case_seconds(args, 10) - worst_case_seconds(args, 0) == 4 * 10
    assert worst_case_seconds(args, 0) == (60 - 1) + (120 - 1) + (240 - 1)
    fixed = local_tasks("owner", dt.timedelta(seconds=30))
    assert worst_case_seconds(fixed, 5) == 3 * 5 + 2 * 30 == sum(airflow_waits(fixed, "t")) + 15
