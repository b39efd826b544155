"""
### Monitor drift (nightly)

Every night at `MLOPS_DRIFT_SCHEDULE` (default 02:00 UTC) checks the **last completed day**
(the run's data interval, never "now", so a re-run or a backfill checks the same day) against
the current `champion`:

- **data drift** of the day's validated features against the champion's training reference
  (logged by training), with Evidently's `DataDriftPreset` (distance metrics by default:
  Wasserstein for numbers, Jensen-Shannon for categories; per-column overrides in settings);
- **prediction drift** of the churn probability, from the model server's prediction log of
  the day, or from scoring the day with the champion when the log is empty;
- **performance**: the champion's ROC AUC on the day's labelled rows against its test ROC AUC.

It keeps an HTML report and a JSON summary under `MLOPS_HOME/reports/drift/night=<day>/`
(re-running a night replaces them), logs both to the MLflow experiment `monitoring`, and
exports the figures as a Prometheus textfile (`reports/drift/drift.prom`).

**Decides** whether to retrain: the share of drifting features or the ROC AUC drop crosses its
threshold on at least k of the last n nights (default 2 of 3), the batch holds at least
`MLOPS_DRIFT_MIN_BATCH_ROWS` rows, and no retrain was requested within
`MLOPS_RETRAIN_COOLDOWN_DAYS` (default 3), unless the ROC AUC dropped hard. Only then
**emits** the Asset `retrain_requested` (reason and figures in `extra`), which triggers
`train_churn_model`; no event on other nights.

A day without a validated partition or a champion without a reference fails without retries;
an unreachable tracking server is retried. Manual run: `--conf '{"date": "2025-06-11"}'`.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, task

from mlops_pipeline.config import get_settings
from mlops_pipeline.orchestration.assets import retrain_requested
from mlops_pipeline.orchestration.retry_policy import retrying_tasks


@dag(
    # The interval makes each run's data interval the day before its trigger time.
    schedule=CronTriggerTimetable(
        get_settings().drift_schedule, timezone="UTC", interval=dt.timedelta(days=1)
    ),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "monitoring", "drift", "evidently"],
    doc_md=__doc__,
    default_args=retrying_tasks("ml-platform"),
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Day to check (default: the last completed day of the data interval).",
        )
    },
)
def monitor_drift():
    @task(multiple_outputs=False)
    def check(data_interval_end=None, params=None, dag_run=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.monitoring.drift import MonitoringDataError
        from mlops_pipeline.monitoring.nightly import run_nightly_check

        night = (
            dt.date.fromisoformat(params["date"])
            if params["date"]
            else (data_interval_end - dt.timedelta(days=1)).date()
        )
        try:
            record = run_nightly_check(
                get_settings(), night, {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id}
            )
        except MonitoringDataError as exc:
            raise AirflowFailException(str(exc)) from exc
        decision = record["decision"]
        print(f"{night}: retrain={decision['retrain']}: " + "; ".join(decision["reasons"]))
        return {
            "date": record["night"],
            "status": record["status"],
            "rows": record["rows"],
            "champion_version": (record.get("champion") or {}).get("version"),
            "drift_share": (record.get("drift") or {}).get("drift_share"),
            "drifted_columns": (record.get("drift") or {}).get("drifted_columns"),
            "roc_auc_drop": (record.get("performance") or {}).get("roc_auc_drop"),
            "retrain": decision["retrain"],
            "reasons": decision["reasons"],
            "nights_flagged": decision["nights_flagged"],
            "report": record.get("report_html"),
        }

    @task.short_circuit
    def retrain_needed(result: dict) -> bool:
        return bool(result["retrain"])

    # The event is emitted only when this task succeeds, and it only runs on nights that
    # decided to retrain.
    @task(outlets=[retrain_requested], multiple_outputs=False)
    def request_retrain(result: dict, outlet_events=None) -> dict:
        extra = {
            "date": result["date"],
            "reason": "; ".join(result["reasons"]),
            "drift_share": result["drift_share"],
            "drifted_columns": result["drifted_columns"],
            "roc_auc_drop": result["roc_auc_drop"],
            "nights_flagged": result["nights_flagged"],
            "champion_version": result["champion_version"],
            "report": result["report"],
        }
        outlet_events[retrain_requested].extra = extra
        return extra

    result = check()
    retrain_needed(result) >> request_retrain(result)


monitor_drift()
