"""
### Ingest customer activity

Daily, for the run's data interval: waits for the day's file in the landing zone, validates it
with the Great Expectations suite `customer_activity_daily` (kept in
`include/mlops_pipeline/data/validation.py`), writes the clean rows to the validated lake partition
(replacing it whole) and the failing rows to quarantine with the names of the expectations they
failed.

- **Fails without retries** when the file is unreadable, empty, breaks the schema, or more than
  `MLOPS_MAX_BAD_ROW_FRACTION` (default 1%) of its rows fail row-level expectations.
- **Never touches** the landed file.
- **Emits** the Asset `validated_customer_activity` on success, with the date, row, quarantine
  counts and validation id in its `extra`.
- Validation results (JSON) and Data Docs are kept under `MLOPS_HOME/reports` for every run.

Backfill a range with `airflow backfill create --dag-id ingest_customer_activity ...`.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import CronDataIntervalTimetable, PokeReturnValue, dag, task

from mlops_pipeline.config import get_settings
from mlops_pipeline.orchestration.assets import validated_customer_activity

# Read from the environment (no I/O): how long to wait for the landing file.
_settings = get_settings()


@dag(
    # Data intervals, not trigger times: the run for [day, day+1) starts once the day is over.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "ingestion", "data-quality"],
    doc_md=__doc__,
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": dt.timedelta(minutes=1)},
)
def ingest_customer_activity():
    @task.sensor(
        poke_interval=_settings.landing_poke_interval_seconds,
        timeout=_settings.landing_wait_timeout_seconds,
        mode="reschedule",
        retries=0,
    )
    def wait_for_landing_file(data_interval_start=None) -> PokeReturnValue:
        from mlops_pipeline.data.storage import find_landing_file

        path = find_landing_file(get_settings().landing_dir, data_interval_start.date())
        return PokeReturnValue(is_done=path is not None, xcom_value=str(path) if path else None)

    # Transient faults (a full disk, a flaky mount) retry; a rejected batch raises
    # AirflowFailException, which skips the retries.
    @task(outlets=[validated_customer_activity])
    def validate_and_split(landing_file: str, data_interval_start=None, outlet_events=None):
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.data.ingestion import BatchRejected, ingest_day

        try:
            report = ingest_day(get_settings(), data_interval_start.date())
        except BatchRejected as rejected:
            raise AirflowFailException(str(rejected)) from rejected
        outlet_events[validated_customer_activity].extra = report.asset_extra
        return report.asset_extra

    validate_and_split(wait_for_landing_file())


ingest_customer_activity()
