"""The ingest DAG: wait for a partition's landing file, validate it, split off the
quarantine, and emit the use case's ``validated_data`` asset.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable, PokeReturnValue, dag, task

from mlops_pipeline.config import Settings
from mlops_pipeline.orchestration import dag_docs
from mlops_pipeline.orchestration.assets import UseCaseAssets
from mlops_pipeline.orchestration.factory.defaults import Pulled, dag_arguments, run_settings
from mlops_pipeline.orchestration.failures import fail_fast
from mlops_pipeline.orchestration.retry_policy import local_tasks
from mlops_pipeline.usecases.loader import UseCase


def ingest_dag(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name, validated = spec.name, assets.validated_data

    @dag(
        # Data intervals, not trigger times: the run for a partition starts once it is over.
        schedule=CronDataIntervalTimetable(spec.cadence.cron, timezone="UTC"),
        doc_md=dag_docs.ingest_doc(spec, settings, assets),
        default_args=local_tasks(spec.owner),
        **dag_arguments(spec, "ingest", ["ingestion", "data-quality"]),
    )
    def ingest() -> None:
        @task.sensor(
            poke_interval=settings.landing_poke_interval_seconds,
            timeout=settings.landing_wait_timeout_seconds,
            mode="reschedule",
            retries=0,
        )
        @fail_fast()
        def wait_for_landing_file(data_interval_start=None) -> PokeReturnValue:
            from mlops_pipeline.data.storage import LANDING_FORMATS, find_landing_file, landing_file

            settings = run_settings(name)
            path = find_landing_file(settings, data_interval_start)
            if path is None:
                expected = landing_file(settings, data_interval_start).with_suffix("")
                print(f"waiting for {expected}.{{{','.join(LANDING_FORMATS)}}}", flush=True)
            return PokeReturnValue(is_done=path is not None, xcom_value=str(path) if path else None)

        # Transient faults (a full disk, a flaky mount) retry; a rejected batch fails at once.
        @task(outlets=[validated])
        @fail_fast()
        def validate_and_split(landing_file: Pulled, data_interval_start=None, outlet_events=None):
            from mlops_pipeline.data.ingestion import ingest_day

            report = ingest_day(run_settings(name), data_interval_start)
            outlet_events[validated].extra = report.asset_extra
            return report.asset_extra

        validate_and_split(wait_for_landing_file())

    return ingest()
