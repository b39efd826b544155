"""The task defaults the generated DAGs share.

Transient failures (a tracking server or database down, a flaky mount) retry; deterministic
ones raise a ``PermanentFailure``, which ``orchestration.failures.fail_fast`` turns into
``AirflowFailException`` so they never retry. Cheap to import: the DAG factory reads it at parse
time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def retrying_tasks(owner: str) -> dict[str, Any]:
    """``default_args`` for tasks that talk to services: three retries, 30 s doubling, at
    most 10 min apart."""
    return {
        "owner": owner,
        "retries": 3,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
    }


def local_tasks(owner: str, retry_delay: dt.timedelta = dt.timedelta(minutes=1)) -> dict[str, Any]:
    """``default_args`` for tasks whose faults are local (files, one quick registry call): two
    retries at a fixed delay."""
    return {"owner": owner, "retries": 2, "retry_delay": retry_delay}
