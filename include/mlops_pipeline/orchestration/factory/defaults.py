"""What every DAG of the factory shares: ids, start date, run-time settings, run references."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pendulum
from airflow.sdk import DAG

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.orchestration.assets import SEPARATOR, UseCaseAssets
from mlops_pipeline.usecases.loader import UseCase

# An upstream task's result: an XComArg while the DAG is built, its value when the task runs.
Pulled = Any

# Builds one stage's DAG from the parse-time settings, the declaration and its assets.
DagBuilder = Callable[[Settings, UseCase, UseCaseAssets], DAG]

START_DATE = pendulum.datetime(2025, 1, 1, tz="UTC")


def dag_id(usecase: str, stage: str) -> str:
    return f"{usecase}{SEPARATOR}{stage}"


def dag_arguments(spec: UseCase, stage: str, tags: list[str]) -> dict[str, Any]:
    """The ``@dag`` arguments every stage shares: id, start, no catchup, one run at a time."""
    return {
        "dag_id": dag_id(spec.name, stage),
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["mlops", spec.name, *tags],
    }


def run_settings(usecase: str) -> Settings:
    """The use case's settings as the task runs (the environment of the worker, not the
    parser's)."""
    return get_settings().for_usecase(usecase)


def run_reference(dag_run: Any) -> dict[str, str]:
    """The run a decision or check record came from."""
    return {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id}
