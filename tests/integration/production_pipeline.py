"""The pipeline on the production profile, through Airflow, in one process.

Run by ``test_production_stack.py`` as ``python -m tests.integration.production_pipeline`` in a
subprocess whose environment is the production profile (the test session's own Airflow is
bound to SQLite when it starts): metadata on Postgres, MLflow at a tracking server with
authentication, the Feast registry on Postgres and the online store on Redis. Prints one JSON
line: each DAG run's state and its tasks' states.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

DAYS = [dt.date(2025, 8, 1) + dt.timedelta(days=i) for i in range(9)]
ROWS = 800


def run() -> dict:
    from mlops_pipeline.config import get_settings
    from mlops_pipeline.data.datagen import generate_day
    from mlops_pipeline.deployment import registry
    from mlops_pipeline.orchestration import runner as airflow_runner

    settings = get_settings()
    name = settings.usecase_name
    airflow_runner.migrate_metadata_db()

    def outcome(dag_run) -> dict:
        return {"state": str(dag_run.state), "tasks": airflow_runner.task_states(dag_run)}

    result: dict = {"ingest": {}}
    for day in DAYS:
        generate_day(settings, day, ROWS, file_format="parquet")
        dag_run = airflow_runner.run_daily(f"{name}__ingest", day)
        result["ingest"][day.isoformat()] = outcome(dag_run)
    dates = [day.isoformat() for day in DAYS]
    result["materialize"] = outcome(
        airflow_runner.run_dag(f"{name}__materialize", conf={"dates": dates})
    )
    result["train"] = outcome(
        airflow_runner.run_dag(
            f"{name}__train", conf={"window_end": dates[-1], "reason": "features"}
        )
    )
    tracking = registry.client(settings)
    challenger = registry.version_for_alias(tracking, settings.spec.model_name, registry.CHALLENGER)
    result["version"] = str(challenger.version)
    result["deploy"] = outcome(
        airflow_runner.run_dag(f"{name}__deploy", conf={"version": result["version"]})
    )
    return result


if __name__ == "__main__":
    print(json.dumps(run()))
    sys.exit(0)
