"""
### Materialize customer features

Runs when `ingest_customer_activity` emits the Asset `validated_customer_activity`, for exactly
the day(s) named by the triggering events (several may have queued), with a small overlap
(`MLOPS_MATERIALIZE_OVERLAP_MINUTES`) for late rows:

1. **register_definitions** applies `feature_repo/` to the Feast registry only when the
   definitions changed (their fingerprint is kept in the registry): re-applying unchanged
   views would reset their materialization state.
2. **materialize** writes the interval to the online store. An interval older than what is
   already online never overwrites newer values (guarded for stores that do not check).
3. **check_online** reads a sample of the day's customers back through the feature service
   `churn_model_v1` and fails if they are not served that day's (or a later day's) values.
4. Emits the Asset `customer_features_online`.

Trigger it by hand for a backfill with `{"dates": ["2025-06-02", "2025-06-03"]}`.
A rejected ingestion day emits no asset event and has no lake partition, so it is never
materialized.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Param, dag, task

from mlops_pipeline.orchestration.assets import (
    customer_features_online,
    validated_customer_activity,
)
from mlops_pipeline.orchestration.retry_policy import retrying_tasks


@dag(
    schedule=[validated_customer_activity],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "features", "feast"],
    doc_md=__doc__,
    default_args=retrying_tasks("data-platform"),
    params={
        "dates": Param(
            [],
            type="array",
            items={"type": "string", "format": "date"},
            description="Days to materialize on a manual run (asset-triggered runs use the "
            "triggering events).",
        )
    },
)
def materialize_customer_features():
    @task(multiple_outputs=False)
    def register_definitions() -> dict:
        from mlops_pipeline.config import get_settings
        from mlops_pipeline.features.store import register_definitions

        return register_definitions(get_settings()).to_dict()

    @task
    def days_to_materialize(triggering_asset_events=None, params=None) -> list[str]:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.features.materialization import days_from_asset_extras

        extras = [{"date": day} for day in (params or {}).get("dates") or []]
        for events in (triggering_asset_events or {}).values():
            extras += [event.extra or {} for event in events]
        try:
            return [day.isoformat() for day in days_from_asset_extras(extras)]
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(multiple_outputs=False)
    def materialize(days: list[str]) -> dict:
        from mlops_pipeline.config import get_settings
        from mlops_pipeline.features.materialization import days_interval, materialize_interval

        start, end = days_interval([dt.date.fromisoformat(d) for d in days])
        return materialize_interval(get_settings(), start, end).to_dict()

    @task(outlets=[customer_features_online], multiple_outputs=False)
    def check_online(days: list[str], materialized: dict, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.config import get_settings
        from mlops_pipeline.features.materialization import OnlineCheckFailed, check_online

        settings = get_settings()
        try:
            checks = [check_online(settings, dt.date.fromisoformat(d)).to_dict() for d in days]
        except (OnlineCheckFailed, FileNotFoundError) as exc:
            raise AirflowFailException(str(exc)) from exc
        extra = {"dates": days, "start": materialized["start"], "end": materialized["end"]}
        outlet_events[customer_features_online].extra = extra
        return {**extra, "checks": checks}

    days = days_to_materialize()
    registered = register_definitions()
    materialized = materialize(days)
    registered >> materialized
    check_online(days, materialized)


materialize_customer_features()
