"""The rollback DAG (manual only): make a given version or alias champion again and record
why.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, dag, task

from mlops_pipeline.config import Settings
from mlops_pipeline.orchestration import dag_docs
from mlops_pipeline.orchestration.assets import ALIAS_WRITES_POOL, UseCaseAssets
from mlops_pipeline.orchestration.factory.defaults import dag_arguments, run_reference, run_settings
from mlops_pipeline.orchestration.failures import fail_fast
from mlops_pipeline.orchestration.notifications import ROLLED_BACK, PlatformNotifier
from mlops_pipeline.orchestration.retry_policy import local_tasks
from mlops_pipeline.usecases.loader import UseCase


def rollback_dag(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name = spec.name

    @dag(
        schedule=None,
        doc_md=dag_docs.rollback_doc(spec, settings, assets),
        default_args=local_tasks(spec.owner, retry_delay=dt.timedelta(seconds=30)),
        params={
            "target": Param(
                "previous_champion",
                type="string",
                description="Version number or alias to make champion.",
            ),
            "reason": Param(
                "manual rollback",
                type="string",
                description="Why the champion is rolled back (kept in the decision record).",
            ),
        },
        **dag_arguments(spec, "rollback", ["deployment", "mlflow"]),
    )
    def rollback() -> None:
        @task(
            pool=ALIAS_WRITES_POOL,
            multiple_outputs=False,
            on_success_callback=PlatformNotifier(ROLLED_BACK),
        )
        @fail_fast()
        def roll_back(params=None, dag_run=None) -> dict:
            from mlops_pipeline.deployment import decisions, registry
            from mlops_pipeline.deployment import promotion as deployment

            settings = run_settings(name)
            model = settings.spec.model_name
            aliases = deployment.rollback(settings, params["target"])
            version = aliases["champion"]
            run_id = registry.client(settings).get_model_version(model, version).run_id
            record = decisions.decision_record(
                "rollback",
                "rolled back",
                model,
                version,
                reasons=[params["reason"]],
                aliases=aliases,
                decided_by=f"manual ({dag_run.run_id})",
                airflow=run_reference(dag_run),
            )
            path = decisions.write_decision_record(settings, record, run_id)
            return {"aliases": aliases, "decision_record": str(path)}

        roll_back()

    return rollback()
