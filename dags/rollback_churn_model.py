"""
### Roll back the churn model

Manual only. Points the MLflow alias `champion` of `churn-classifier` at `target` (a version
number, or an alias; default `previous_champion`) and makes the replaced champion the new
`previous_champion`, so a rollback can itself be undone. Re-reads the alias to verify it, and
writes a decision record (`MLOPS_HOME/reports/decisions`, and on the target version's run).
Runs in the one-slot pool `model_alias_writes`.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Param, dag, task

from mlops_pipeline.orchestration.assets import ALIAS_WRITES_POOL


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "deployment", "mlflow"],
    doc_md=__doc__,
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": dt.timedelta(seconds=30)},
    params={
        "target": Param(
            "previous_champion",
            type="string",
            description="Version number or alias to make champion.",
        ),
        "reason": Param("manual rollback", type="string"),
    },
)
def rollback_churn_model():
    @task(pool=ALIAS_WRITES_POOL, multiple_outputs=False)
    def roll_back(params=None, dag_run=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.config import get_settings
        from mlops_pipeline.deployment import promotion as deployment
        from mlops_pipeline.deployment import registry

        settings = get_settings()
        try:
            aliases = deployment.rollback(settings, params["target"])
        except deployment.DeploymentError as exc:
            raise AirflowFailException(str(exc)) from exc
        version = aliases["champion"]
        run_id = (
            registry.client(settings)
            .get_model_version(settings.registered_model_name, version)
            .run_id
        )
        record = deployment.decision_record(
            "rollback",
            "rolled back",
            settings.registered_model_name,
            version,
            reasons=[params["reason"]],
            aliases=aliases,
            decided_by=f"manual ({dag_run.run_id})",
            airflow={"dag_id": dag_run.dag_id, "run_id": dag_run.run_id},
        )
        path = deployment.write_decision_record(settings, record, run_id)
        return {"aliases": aliases, "decision_record": str(path)}

    roll_back()


rollback_churn_model()
