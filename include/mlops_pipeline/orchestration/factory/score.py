"""The batch scoring DAG: once a partition is validated and its features materialized, score
every entity of it with the champion and emit the use case's ``predictions`` asset.

Scheduled on the cadence's data intervals like ingest, so the run for a partition starts when
it is over and ``airflow backfill create`` scores a range of partitions.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable, PokeReturnValue, dag, task

from mlops_pipeline.config import Settings
from mlops_pipeline.orchestration import dag_docs
from mlops_pipeline.orchestration.assets import UseCaseAssets
from mlops_pipeline.orchestration.factory.defaults import (
    Pulled,
    dag_arguments,
    run_reference,
    run_settings,
)
from mlops_pipeline.orchestration.failures import fail_fast
from mlops_pipeline.orchestration.retry_policy import retrying_tasks
from mlops_pipeline.usecases.loader import UseCase


def score_dag(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name, predictions = spec.name, assets.predictions

    @dag(
        schedule=CronDataIntervalTimetable(spec.cadence.cron, timezone="UTC"),
        doc_md=dag_docs.score_doc(spec, settings, assets),
        default_args=retrying_tasks(spec.owner),
        **dag_arguments(spec, "score", ["scoring", "batch"]),
    )
    def score() -> None:
        # Ingestion and materialization of the same partition run on their own triggers and
        # may still be on their way: wait for them (bounded). No champion fails at once.
        @task.sensor(
            poke_interval=settings.scoring_poke_interval_seconds,
            timeout=settings.scoring_wait_timeout_seconds,
            mode="reschedule",
            retries=0,
        )
        @fail_fast()
        def wait_for_partition(data_interval_start=None) -> PokeReturnValue:
            from mlops_pipeline.deployment import registry
            from mlops_pipeline.scoring.readiness import champion_version, not_ready_reason
            from mlops_pipeline.usecases.vocabulary import partition_key

            settings = run_settings(name)
            partition = settings.spec.cadence.partition_of(data_interval_start)
            champion_version(settings, registry.client(settings))
            reason = not_ready_reason(settings, partition)
            if reason:
                print(f"waiting for {partition_key(partition)}: {reason}")
            return PokeReturnValue(is_done=reason is None, xcom_value=partition_key(partition))

        @task(outlets=[predictions], multiple_outputs=False)
        @fail_fast()
        def score(partition: Pulled, dag_run=None, outlet_events=None) -> dict:
            from mlops_pipeline.scoring.batch import score_partition

            settings = run_settings(name)
            day = settings.spec.cadence.parse(partition)
            result = score_partition(settings, day, run_reference(dag_run))
            outlet_events[predictions].extra = result.asset_extra
            return result.to_dict()

        score(wait_for_partition())

    return score()
