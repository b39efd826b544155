"""The one adapter from the platform's failure taxonomy (``mlops_pipeline.failures``) to
Airflow, used by every task of the DAG factory.

- ``PermanentFailure`` (a rejected batch, a bad spec, a failed gate, a use case's transform
  raising, which the stages wrap as ``UserCodeError``) becomes ``AirflowFailException``: the
  task fails at once, without spending its retries on a result that cannot change.
- An MLflow error that stands for a busy store (a locked SQLite database) becomes
  ``TrackingUnavailable``, a ``TransientFailure`` that says so, instead of a raw database error.
- ``TransientFailure`` and every other error propagate unchanged, so the task's retry policy
  (``retry_policy.retrying_tasks``) retries them.

A task that returns ends its log with one line of what it produced (``summary``): the version,
metrics, rows, decision or paths it hands on, so nobody reads XComs to learn what happened.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from mlops_pipeline.failures import PermanentFailure, TransientFailure

P = ParamSpec("P")
R = TypeVar("R")
# A task's closing line stays one line a person reads, whatever the task returned.
SUMMARY_CHARS = 300
VALUE_CHARS = 100


@contextmanager
def _translated() -> Generator[None, None, None]:
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


class _FailFast:
    # What the DAG integrity test finds in a task's closure (as with a contextmanager).
    func = staticmethod(_translated)

    def __enter__(self) -> None:
        self._context = self.func()
        self._context.__enter__()

    def __exit__(self, *exc_info: Any) -> bool | None:
        return self._context.__exit__(*exc_info)

    def __call__(self, task: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(task)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.func():
                result = task(*args, **kwargs)
            print(f"{task.__name__}: {summary(result)}", flush=True)
            return result

        return run


def fail_fast() -> _FailFast:
    """Fail the task without retries on a ``PermanentFailure``; as a decorator, also end the
    task's log with one line of what it returned (``summary``).

    A context manager that is also a decorator (it keeps the wrapped function's signature, so
    Airflow still passes the context arguments a task asks for)::

        @task
        @fail_fast()
        def validate(data_interval_start=None): ...
    """
    return _FailFast()


# As ``contextmanager`` would: the generator function behind it, for the integrity test.
functools.update_wrapper(fail_fast, _translated, assigned=(), updated=())


def summary(value: Any, limit: int = SUMMARY_CHARS) -> str:
    """One bounded line of a task's result: ``key=value`` pairs, nested keys dotted, numbers
    short, long values cut in the middle, long lists counted."""
    if hasattr(value, "is_done") and hasattr(value, "xcom_value"):  # a sensor's poke
        line = f"done, {value.xcom_value}" if value.is_done else "not done yet"
    elif isinstance(value, dict):
        line = ", ".join(f"{k}={v}" for k, v in _pairs(value)) or "{}"
    elif value is None:
        line = "done"
    else:
        line = _short(value)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _pairs(value: dict, prefix: str = "") -> Generator[tuple[str, str], None, None]:
    for key, item in value.items():
        if isinstance(item, dict) and item:
            yield from _pairs(item, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _short(item)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        if len(value) <= 3 and all(isinstance(v, str | int | float) for v in value):
            return "[" + ", ".join(_short(v) for v in value) + "]"
        return f"[{len(value)} items]"
    text = str(value)
    # Cut in the middle: a path's or an id's end tells most.
    half = VALUE_CHARS // 2
    return text if len(text) <= VALUE_CHARS else f"{text[: half - 1]}…{text[-half:]}"
