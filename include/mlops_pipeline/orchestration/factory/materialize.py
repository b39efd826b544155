"""The materialize DAG: register the feature definitions and load the validated
partitions into the online store, then emit ``features_online``.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, dag, task

from mlops_pipeline.config import Settings
from mlops_pipeline.orchestration import dag_docs
from mlops_pipeline.orchestration.assets import UseCaseAssets
from mlops_pipeline.orchestration.factory.defaults import Pulled, dag_arguments, run_settings
from mlops_pipeline.orchestration.failures import fail_fast
from mlops_pipeline.orchestration.retry_policy import retrying_tasks
from mlops_pipeline.usecases.loader import UseCase
from mlops_pipeline.usecases.vocabulary import PARTITION_PATTERN, partition_key


def materialize_dag(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name, online = spec.name, assets.features_online

    @dag(
        schedule=[assets.validated_data],
        doc_md=dag_docs.materialize_doc(spec, settings, assets),
        default_args=retrying_tasks(spec.owner),
        params={
            "dates": Param(
                [],
                type="array",
                items={"type": "string", "pattern": PARTITION_PATTERN},
                description="Partitions to materialize on a manual run (asset-triggered runs "
                "use the triggering events): days, or hours as YYYY-MM-DDTHH.",
            )
        },
        **dag_arguments(spec, "materialize", ["features", "feast"]),
    )
    def materialize() -> None:
        @task(multiple_outputs=False)
        @fail_fast()
        def register_definitions() -> dict:
            from mlops_pipeline.features.store import register_definitions

            return register_definitions(run_settings(name)).to_dict()

        @task
        @fail_fast()
        def days_to_materialize(triggering_asset_events=None, params=None) -> list[str]:
            from mlops_pipeline.features.materialization import days_from_asset_extras

            cadence = run_settings(name).spec.cadence
            extras = [{"date": day} for day in (params or {}).get("dates") or []]
            for events in (triggering_asset_events or {}).values():
                extras += [dict(event.extra or {}) for event in events]
            return [partition_key(day) for day in days_from_asset_extras(extras, cadence)]

        @task(multiple_outputs=False)
        @fail_fast()
        def materialize(days: Pulled) -> dict:
            from mlops_pipeline.features.materialization import (
                days_interval,
                materialize_interval,
            )

            settings = run_settings(name)
            days_of = [settings.spec.cadence.parse(d) for d in days]
            start, end = days_interval(days_of, settings.spec.cadence)
            return materialize_interval(settings, start, end).to_dict()

        @task(outlets=[online], multiple_outputs=False)
        @fail_fast()
        def check_online(days: Pulled, materialized: Pulled, outlet_events=None) -> dict:
            from mlops_pipeline.features.materialization import check_online

            settings = run_settings(name)
            cadence = settings.spec.cadence
            checks = [check_online(settings, cadence.parse(d)).to_dict() for d in days]
            extra = {"dates": days, "start": materialized["start"], "end": materialized["end"]}
            outlet_events[online].extra = extra
            return {**extra, "checks": checks}

        days = days_to_materialize()
        registered = register_definitions()
        materialized = materialize(days)
        registered >> materialized
        check_online(days, materialized)

    return materialize()
