"""The task defaults the project's DAGs share.

Transient failures (a tracking server or database down) retry with exponential backoff;
deterministic ones (bad data, a failed gate) raise ``AirflowFailException`` and never retry.
Cheap to import: DAG files read it at parse time.
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
