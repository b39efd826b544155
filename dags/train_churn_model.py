"""
### Train the churn model

Trains a new version of `churn-classifier` and points the MLflow alias `challenger` at it.

**Triggers** (one run at a time):
- the Asset `customer_features_online` (new features materialized): trains only when the data
  window moved at least `MLOPS_TRAINING_CADENCE_DAYS` (default 7) since the last trained
  version, so a new day does not always retrain;
- the Asset `retrain_requested` (drift monitoring): always trains;
- a manual run, with `params`: the window end and length, hyperparameters and a reason.

**What it records**: the training set comes only from the Feast feature service
`churn_model_v1` (point-in-time correct). The MLflow run logs parameters, test metrics overall
and per segment, the model with signature and input example, the training data (with the
content hash of every lake partition used), the training reference sample for drift
monitoring, a model card (Markdown and HTML) with SHAP importance, and lineage tags (code
version, Airflow run, validation ids, feature service and views, data window, reason).

**Emits** the Asset `churn_model_challenger` with the version in `extra`.

Too little data or a single-class label fails at once (no retries); an unreachable tracking
server is retried with backoff.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Param, dag, task

from mlops_pipeline.orchestration.assets import (
    churn_model_challenger,
    customer_features_online,
    retrain_requested,
)
from mlops_pipeline.orchestration.retry_policy import retrying_tasks


@dag(
    schedule=(customer_features_online | retrain_requested),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "training", "mlflow"],
    doc_md=__doc__,
    default_args=retrying_tasks("ml-platform"),
    params={
        "window_end": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last day of the training window (default: the day before the run).",
        ),
        "window_days": Param(28, type="integer", minimum=7, description="Days in the window."),
        "learning_rate": Param(0.08, type="number", exclusiveMinimum=0, maximum=1),
        "max_iter": Param(250, type="integer", minimum=10, maximum=5000),
        "max_leaf_nodes": Param(31, type="integer", minimum=2, maximum=1024),
        "seed": Param(42, type="integer"),
        "reason": Param("manual", type="string", description="Why this model is trained."),
    },
)
def train_churn_model():
    @task.short_circuit
    def plan(triggering_asset_events=None, params=None, dag_run=None) -> dict | bool:
        from mlops_pipeline.config import get_settings
        from mlops_pipeline.training.job import (
            days_needed,
            last_trained_window_end,
            plan_training,
            trigger_from_events,
            validated_days_in_window,
        )
        from mlops_pipeline.training.model import TrainingParams

        extras = {
            key.name: [dict(event.extra or {}) for event in events]
            for key, events in (triggering_asset_events or {}).items()
        }
        window_end, reason = trigger_from_events(
            extras, params["window_end"], params["reason"], dag_run.run_after.date()
        )
        settings = get_settings()
        decision = plan_training(
            settings,
            window_end,
            reason,
            last_trained_window_end(settings),
            validated_days_in_window(settings, window_end, int(params["window_days"])),
            days_needed(TrainingParams.from_dict(dict(params))),
        )
        print(f"training {'due' if decision.due else 'not due'}: {decision.why}")
        return decision.to_dict() if decision.due else False

    @task(outlets=[churn_model_challenger], multiple_outputs=False)
    def train(plan: dict, params=None, dag_run=None, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.config import get_settings
        from mlops_pipeline.features.access import NotEnoughData
        from mlops_pipeline.training.job import TrainingRequest, train_and_register
        from mlops_pipeline.training.model import TrainingDataError, TrainingParams

        request = TrainingRequest(
            window_end=dt.date.fromisoformat(plan["window_end"]),
            window_days=int(params["window_days"]),
            params=TrainingParams.from_dict(dict(params)),
            reason=plan["reason"],
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
        )
        try:
            outcome = train_and_register(get_settings(), request)
        except (NotEnoughData, TrainingDataError) as exc:
            raise AirflowFailException(str(exc)) from exc
        extra = {
            "model_name": outcome.model_name,
            "version": outcome.version,
            "run_id": outcome.run_id,
            "data_window": outcome.data_window,
        }
        outlet_events[churn_model_challenger].extra = extra
        return {**extra, "metrics": outcome.metrics, "timings": outcome.timings}

    train(plan())


train_churn_model()
