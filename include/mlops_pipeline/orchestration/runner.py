"""Run the project's DAGs in-process through Airflow (``dag.test``), for the demo and the tests.

This is one of the few modules that import Airflow. It prepares the embedded Airflow (SQLite
metadata database under ``MLOPS_HOME``) when the environment has not pointed elsewhere.

DAG ids are ``<usecase>__<stage>`` (``orchestration.factory.defaults.dag_id``). ``dag.test()``
does not trigger the consumers of the assets a run emits; ``run_on_events`` runs a consumer on
exactly the events a producer's run emitted, as the scheduler would hand them over.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings


def embedded_airflow_env(airflow_home: Path, dags_folder: Path) -> dict[str, str]:
    """Airflow's variables of the embedded profile: SQLite metadata under ``airflow_home``."""
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def configure_embedded_airflow(settings: Settings, dags_folder: Path | None = None) -> None:
    """Default Airflow's environment to the embedded profile. Must run before Airflow is
    imported; variables already set (by the Makefile or a production profile) win."""
    defaults = embedded_airflow_env(settings.home / "airflow", dags_folder or Path.cwd() / "dags")
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)


@cache
def migrate_metadata_db() -> None:
    """Create or upgrade Airflow's metadata database and the project's pools (idempotent)."""
    from airflow.models.pool import Pool
    from airflow.utils.db import upgradedb

    from mlops_pipeline.orchestration.assets import ALIAS_WRITES_POOL

    upgradedb()
    Pool.create_or_update_pool(
        ALIAS_WRITES_POOL,
        slots=1,
        description="Serializes MLflow alias moves.",
        include_deferred=False,
    )


@cache
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    # DagBag.get_dag consults the metadata database, so it must exist first.
    migrate_metadata_db()
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag


def _started_now(create: Callable[..., Any]) -> Callable[..., Any]:
    """``get_or_create_dagrun`` with the run's real start: ``dag.test()`` dates it at its
    logical date, so a run of a past partition "took" the days since then in the UI's
    durations (its end is the real one)."""
    from airflow.sdk import timezone

    def create_started_now(**kwargs: Any) -> Any:
        return create(**{**kwargs, "start_date": timezone.utcnow()})

    return create_started_now


def _test(dag: Any, **kwargs: Any) -> Any:
    """``dag.test(**kwargs)``, its run started now."""
    from unittest import mock

    from airflow.models import dagrun as dagrun_module

    create = _started_now(dagrun_module.get_or_create_dagrun)
    # dag.test() looks the helper up in its module at each call.
    with mock.patch.object(dagrun_module, "get_or_create_dagrun", create):
        return dag.test(**kwargs)


def run_dag(dag_id: str, logical_date: dt.datetime | None = None, conf: dict | None = None) -> Any:
    """Run a whole DAG in this process and return its DagRun."""
    dag = dagbag().get_dag(dag_id)
    kwargs: dict[str, Any] = {"run_conf": conf}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    return _test(dag, **kwargs)


def run_daily(dag_id: str, day: dt.date, conf: dict | None = None) -> Any:
    """Run a daily DAG for the data interval ``[day, day + 1)``.

    A manual run processes the last complete interval before its logical date, so the run for
    a day is dated the midnight that ends it.
    """
    from mlops_pipeline.usecases.vocabulary import Cadence

    return run_dag(dag_id, logical_date=Cadence.DAILY.start(day) + dt.timedelta(days=1), conf=conf)


def run_partition(dag_id: str, partition: dt.date, conf: dict | None = None) -> Any:
    """Run a DAG of a use case for the data interval of the partition holding ``partition`` (an
    hour, a day or a week, by the use case's declared cadence)."""
    from mlops_pipeline.config import get_settings
    from mlops_pipeline.orchestration.assets import SEPARATOR

    usecase = dag_id.split(SEPARATOR, 1)[0]
    cadence = get_settings().for_usecase(usecase).spec.cadence
    end = cadence.start(partition) + cadence.length
    return run_dag(dag_id, logical_date=end, conf=conf)


def run_on_events(dag_id: str, producers: list[Any]) -> Any | None:
    """Run ``dag_id`` on the asset events that the ``producers`` (DagRuns) emitted on the assets
    it is scheduled on, as the scheduler would: its tasks see them as
    ``triggering_asset_events``. Returns the DagRun, or None when those runs emitted no such
    event (the scheduler would not have run it)."""
    from unittest import mock

    from airflow.models import dagrun as dagrun_module
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import and_, or_

    dag = dagbag().get_dag(dag_id)
    names = scheduled_on(dag)
    emitted = or_(
        *(
            and_(AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)
            for run in producers
        )
    )

    def events(session: Any) -> list[Any]:
        return (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name.in_(names), emitted)
            .order_by(AssetEvent.id)
            .all()
        )

    from airflow.utils.session import create_session

    with create_session() as session:
        if not producers or not events(session):
            return None
    create = dagrun_module.get_or_create_dagrun

    def create_with_events(**kwargs: Any) -> Any:
        run = create(**kwargs)
        session = kwargs["session"]
        run.consumed_asset_events.extend(events(session))
        session.commit()
        return run

    # dag.test() creates its run through this helper; the events are attached before any task
    # of the run starts.
    with mock.patch.object(dagrun_module, "get_or_create_dagrun", create_with_events):
        return _test(dag, logical_date=None)


def scheduled_on(dag: Any) -> set[str]:
    """Names of the assets an asset-scheduled DAG waits for (``a | b``, ``[a, b]``, ``a``)."""

    def names(condition: Any) -> set[str]:
        if hasattr(condition, "objects"):
            return set().union(*(names(part) for part in condition.objects))
        return {condition.name}

    return names(dag.timetable.asset_condition)


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
        )
        return {ti.task_id: str(ti.state) for ti in rows}


def asset_event_extras(asset_name: str, dag_run: Any | None = None) -> list[dict]:
    """The ``extra`` of every event of ``asset_name``, oldest first; with ``dag_run``, only
    the events that run emitted: what the scheduler would hand the consuming DAG
    (``dag.test()`` does not trigger consumers)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == asset_name)
        )
        if dag_run is not None:
            events = events.filter(
                AssetEvent.source_dag_id == dag_run.dag_id,
                AssetEvent.source_run_id == dag_run.run_id,
            )
        return [dict(e.extra or {}) for e in events.order_by(AssetEvent.id)]


def task_seconds(dag_runs: list[Any]) -> float:
    """Sum of the task instances' run durations over ``dag_runs`` (what the tasks did, without
    the orchestration around them)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    total = 0.0
    with create_session() as session:
        for dag_run in dag_runs:
            rows = session.query(TaskInstance.duration).filter(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
            )
            total += sum(duration or 0.0 for (duration,) in rows)
    return total
