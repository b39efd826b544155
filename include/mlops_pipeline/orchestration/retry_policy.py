"""The task defaults the generated DAGs share.

Transient failures (a tracking server or database down, a flaky mount) retry; deterministic
ones raise a ``PermanentFailure``, which ``orchestration.failures.fail_fast`` turns into
``AirflowFailException`` so they never retry. A task that fails for good notifies
(``orchestration.notifications``). Cheap to import: the DAG factory reads it at parse
time.

These retries are the only retry budget against a dead service: MLflow's HTTP client is told
not to retry on its own (``deployment.registry.HTTP_CLIENT_BUDGET``), so an attempt against a
refused tracking server fails in seconds and ``worst_case_seconds`` bounds the whole task.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from mlops_pipeline.orchestration.notifications import TASK_FAILED, PlatformNotifier

# Airflow multiplies the delay by this per retry; `True` would mean a multiplier of 1 (no
# backoff at all), so the factor is given as a number.
BACKOFF_MULTIPLIER = 2.0


def retrying_tasks(owner: str) -> dict[str, Any]:
    """``default_args`` for tasks that talk to services: three retries, 30 s doubling, at
    most 10 min apart."""
    return {
        "owner": owner,
        "retries": 3,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": BACKOFF_MULTIPLIER,
        "max_retry_delay": dt.timedelta(minutes=10),
        "on_failure_callback": PlatformNotifier(TASK_FAILED),
    }


def local_tasks(owner: str, retry_delay: dt.timedelta = dt.timedelta(minutes=1)) -> dict[str, Any]:
    """``default_args`` for tasks whose faults are local (files, one quick registry call): two
    retries at a fixed delay."""
    return {
        "owner": owner,
        "retries": 2,
        "retry_delay": retry_delay,
        "on_failure_callback": PlatformNotifier(TASK_FAILED),
    }


def worst_case_seconds(default_args: Mapping[str, Any], attempt_seconds: float) -> float:
    """The longest a task with these ``default_args`` takes to fail for good when each attempt
    fails after ``attempt_seconds``: every attempt plus the longest wait before each retry.

    Airflow's exponential wait before retry ``n`` lies between ``retry_delay * m ** (n - 1)``
    and twice that (a per-task-instance hash spreads retries), capped by ``max_retry_delay``.
    """
    retries = int(default_args.get("retries", 0))
    delay = default_args.get("retry_delay", dt.timedelta(minutes=5)).total_seconds()
    multiplier = float(default_args.get("retry_exponential_backoff", 0)) or 1.0
    cap = default_args.get("max_retry_delay")
    waits = []
    for retry in range(1, retries + 1):
        wait = delay
        if multiplier != 1.0:
            least = max(1, math.ceil(delay * multiplier ** (retry - 1)))
            wait = 2 * least - 1
        if cap is not None:
            wait = min(wait, cap.total_seconds())
        waits.append(wait)
    return (retries + 1) * attempt_seconds + sum(waits)
