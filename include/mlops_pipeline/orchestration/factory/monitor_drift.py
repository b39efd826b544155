"""The nightly drift DAG: check the last completed partition and, when drift is real
enough, emit ``retrain_requested``.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable, Param, dag, task

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
from mlops_pipeline.orchestration.schedules import drift_schedule
from mlops_pipeline.usecases.loader import UseCase
from mlops_pipeline.usecases.vocabulary import PARTITION_PATTERN


def monitor_drift_dag(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name, retrain = spec.name, assets.retrain_requested

    @dag(
        # The interval makes each run's data interval end at its trigger time; the partition
        # checked is the last one completed by then.
        schedule=CronTriggerTimetable(
            drift_schedule(settings, spec.cadence), timezone="UTC", interval=spec.cadence.length
        ),
        doc_md=dag_docs.monitor_drift_doc(spec, settings, assets),
        default_args=retrying_tasks(spec.owner),
        params={
            "date": Param(
                None,
                type=["null", "string"],
                pattern=PARTITION_PATTERN,
                description="Partition to check, a day or an hour as YYYY-MM-DDTHH (default: "
                "the last one completed before the run's data interval ends).",
            )
        },
        **dag_arguments(spec, "monitor_drift", ["monitoring", "drift", "evidently"]),
    )
    def monitor_drift() -> None:
        @task(multiple_outputs=False)
        @fail_fast()
        def check(data_interval_end=None, params=None, dag_run=None) -> dict:
            from mlops_pipeline.monitoring.nightly import run_nightly_check
            from mlops_pipeline.monitoring.records import NightOutcome

            settings = run_settings(name)
            cadence = settings.spec.cadence
            night = (
                cadence.parse(params["date"])
                if params["date"]
                else cadence.partition_of(data_interval_end) - cadence.length
            )
            record = run_nightly_check(settings, night, run_reference(dag_run))
            decision = record.decision
            print(f"{night}: retrain={decision.retrain}: " + "; ".join(decision.reasons))
            return NightOutcome.of(record).model_dump(mode="json")

        @task.short_circuit
        @fail_fast()
        def retrain_needed(result: Pulled) -> bool:
            from mlops_pipeline.monitoring.records import NightOutcome

            return NightOutcome.model_validate(result).retrain

        # The event is emitted only when this task succeeds, and it only runs on nights that
        # decided to retrain.
        @task(outlets=[retrain], multiple_outputs=False)
        @fail_fast()
        def request_retrain(result: Pulled, outlet_events=None) -> dict:
            from mlops_pipeline.monitoring.records import NightOutcome

            extra = NightOutcome.model_validate(result).retrain_event()
            outlet_events[retrain].extra = extra
            return extra

        result = check()
        retrain_needed(result) >> request_retrain(result)

    return monitor_drift()
