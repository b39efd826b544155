"""The one adapter from the platform's failures to Airflow: permanent ones fail the task at
once, everything else is left to the retry policy."""

from __future__ import annotations

import inspect

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_pipeline.failures import PermanentFailure, SpecError, TransientFailure, UserCodeError
from mlops_pipeline.orchestration.failures import fail_fast


class BatchRejectedLike(PermanentFailure):
    """A stage's own domain error, as the stages declare them."""


@pytest.mark.parametrize(
    "error",
    [
        BatchRejectedLike("3% of rows failed"),
        SpecError("label: 'x' is not a declared column"),
        # What the stages raise when a use case's transform raises KeyError or TypeError.
        UserCodeError("transforms.ratios raised KeyError: 'num_devices'"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_permanent_failure_fails_without_retries_and_keeps_its_message(error):
    with pytest.raises(AirflowFailException) as raised:
        with fail_fast():
            raise error
    assert str(raised.value) == f"{type(error).__name__}: {error}"
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [TransientFailure("tracking server unreachable"), ConnectionError("refused"), KeyError("x")],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_are_left_to_the_retry_policy(error):
    with pytest.raises(type(error)) as raised:
        with fail_fast():
            raise error
    assert raised.value is error


def test_as_a_decorator_it_keeps_the_signature_airflow_reads():
    @fail_fast()
    def task(landing_file: str, data_interval_start=None, outlet_events=None) -> str:
        raise BatchRejectedLike(landing_file)

    assert list(inspect.signature(task).parameters) == [
        "landing_file",
        "data_interval_start",
        "outlet_events",
    ]
    with pytest.raises(AirflowFailException, match="BatchRejectedLike: day.csv"):
        task("day.csv")
    with pytest.raises(AirflowFailException):  # reusable: a fresh context per call
        task("again.csv")
