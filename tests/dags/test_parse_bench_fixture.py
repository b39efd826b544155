"""The parse bench's yardstick is what it claims to be: the smallest TaskFlow DAG file, one DAG
of one task on a cron schedule, so "ours over the minimal DAG" is the platform's share."""

from __future__ import annotations

from tests.conftest import REPO

MINIMAL_DAG = REPO / "bench" / "minimal_taskflow_dag.py"


def test_the_minimal_taskflow_dag_is_one_task_on_a_cron_schedule():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import CronTriggerTimetable

    bag = DagBag(str(MINIMAL_DAG))

    assert bag.import_errors == {}
    (dag,) = bag.dags.values()
    assert [task.task_id for task in dag.tasks] == ["hello"]
    assert dag.tasks[0].task_type == "_PythonDecoratedOperator"
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.expression == "0 0 * * *"
