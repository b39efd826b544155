"""The one adapter from the platform's failure taxonomy (``mlops_pipeline.failures``) to
Airflow, used by every task of the DAG factory.

- ``PermanentFailure`` (a rejected batch, a bad spec, a failed gate, a use case's transform
  raising, which the stages wrap as ``UserCodeError``) becomes ``AirflowFailException``: the
  task fails at once, without spending its retries on a result that cannot change.
- An MLflow error that stands for a busy store (a locked SQLite database) becomes
  ``TrackingUnavailable``, a ``TransientFailure`` that says so, instead of a raw database error.
- ``TransientFailure`` and every other error propagate unchanged, so the task's retry policy
  (``retry_policy.retrying_tasks``) retries them.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowFailException

from mlops_pipeline.failures import PermanentFailure, TransientFailure


@contextmanager
def fail_fast() -> Generator[None, None, None]:
    """Fail the task without retries on a ``PermanentFailure``.

    A context manager that is also a decorator (it keeps the wrapped function's signature, so
    Airflow still passes the context arguments a task asks for)::

        @task
        @fail_fast()
        def validate(data_interval_start=None): ...
    """
    try:
        yield
    except PermanentFailure as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    except TransientFailure:
        raise
    except Exception as exc:
        # Imported here: DAG files import this module at parse time.
        from mlops_pipeline.deployment.registry import tracking_failure

        transient = tracking_failure(exc)
        if transient is None:
            raise
        raise transient from exc
