"""The demo's DAG runs (``dag.test()`` of a past partition) carry their real start, so the UI's
durations show what the run took, not the days since the partition's logical date."""

from __future__ import annotations

import datetime as dt
import inspect

from mlops_pipeline.orchestration import runner


def test_dag_test_dates_its_run_at_the_logical_date_through_the_patched_helper():
    """What the runner corrects, and where: if Airflow changes either, this says so."""
    from airflow.sdk import DAG

    source = inspect.getsource(DAG.test)
    assert "from airflow.models.dagrun import DagRun, get_or_create_dagrun" in source
    assert "start_date=logical_date or run_after" in source


def test_a_run_of_a_past_partition_starts_when_it_runs(monkeypatch):
    from airflow.models import dagrun as dagrun_module
    from airflow.sdk import timezone

    created: list[dict] = []

    def create(**kwargs):
        created.append(kwargs)

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", create)
    logical = dt.datetime(2025, 3, 4, tzinfo=dt.UTC)

    class Dag:
        def test(self, logical_date):
            # As DAG.test does: the helper imported from its module at call time.
            from airflow.models.dagrun import get_or_create_dagrun

            get_or_create_dagrun(start_date=logical_date, logical_date=logical_date)
            return "run"

    before = timezone.utcnow()
    assert runner._test(Dag(), logical_date=logical) == "run"
    [call] = created
    assert call["logical_date"] == logical
    assert before <= call["start_date"] <= timezone.utcnow()
    assert dagrun_module.get_or_create_dagrun is create, "patched for the run only"
