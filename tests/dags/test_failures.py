"""The one adapter from the platform's failures to Airflow: permanent ones fail the task at
once, everything else is left to the retry policy."""

from __future__ import annotations

import inspect

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_pipeline.failures import PermanentFailure, SpecError, TransientFailure, UserCodeError
from mlops_pipeline.orchestration.failures import SUMMARY_CHARS, fail_fast, summary


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


def test_a_task_ends_its_log_with_one_bounded_line_of_what_it_produced(capsys):
    @fail_fast()
    def train() -> dict:
        return {
            "model_name": "churn_model",
            "version": "4",
            "metrics": {"roc_auc": 0.812345678, "pr_auc": 0.5},
            "data_window": ["2025-08-01", "2025-08-09"],
            "partitions": [{"date": f"2025-08-0{i}"} for i in range(1, 10)],
            "run_id": "f" * 200,
            "report": "/a/" + "d" * 200 + "/report.json",
        }

    assert train()["version"] == "4", "the value itself is handed on unchanged"
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(
        "train: model_name=churn_model, version=4, metrics.roc_auc=0.8123, metrics.pr_auc=0.5, "
        "data_window=[2025-08-01, 2025-08-09], partitions=[9 items], run_id=ffff"
    )
    assert "f…ffff" in line, "a long value is cut in the middle"
    assert line.endswith("…") and len(line) == len("train: ") + SUMMARY_CHARS


def test_a_failing_task_has_no_summary_and_a_sensor_says_whether_it_is_done(capsys):
    from airflow.sdk import PokeReturnValue

    @fail_fast()
    def rejected() -> dict:
        raise BatchRejectedLike("3% of rows failed")

    with pytest.raises(AirflowFailException):
        rejected()
    assert capsys.readouterr().out == ""
    assert summary(PokeReturnValue(is_done=False)) == "not done yet"
    assert summary(PokeReturnValue(is_done=True, xcom_value="/l/a.csv")) == "done, /l/a.csv"
    assert (summary(None), summary(False), summary({})) == ("done", "False", "{}")


def test_the_landing_sensor_says_which_path_it_waits_for(settings, capsys):
    import datetime as dt

    from mlops_pipeline.data.datagen import generate_day
    from mlops_pipeline.data.storage import landing_file
    from mlops_pipeline.orchestration.factory import build_dags

    day = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
    sensor = build_dags("churn")["churn__ingest"].get_task("wait_for_landing_file")
    assert not sensor.python_callable(data_interval_start=day).is_done
    waiting = str(landing_file(settings, day.date()).with_suffix(""))
    assert capsys.readouterr().out.splitlines() == [
        f"waiting for {waiting}.{{csv,parquet}}",
        "wait_for_landing_file: not done yet",
    ]
    generate_day(settings, day.date(), rows=20)
    assert sensor.python_callable(data_interval_start=day).is_done
    assert capsys.readouterr().out.splitlines() == [
        f"wait_for_landing_file: done, {landing_file(settings, day.date())}"
    ]
