"""The train DAG: decide whether training is due from the triggering events, then train
and register a challenger (emitting ``challenger``).
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
from mlops_pipeline.usecases.vocabulary import PARTITION_PATTERN


def train_dag(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name, challenger = spec.name, assets.challenger

    @dag(
        schedule=(assets.features_online | assets.retrain_requested),
        doc_md=dag_docs.train_doc(spec, settings, assets),
        default_args=retrying_tasks(spec.owner),
        params={
            "window_end": Param(
                None,
                type=["null", "string"],
                pattern=PARTITION_PATTERN,
                description="Last partition of the training window on a manual run, a day or "
                "an hour as YYYY-MM-DDTHH (default: the one before the run).",
            ),
            "reason": Param("manual", type="string", description="Why this model is trained."),
        },
        **dag_arguments(spec, "train", ["training", "mlflow"]),
    )
    def train() -> None:
        @task.short_circuit
        @fail_fast()
        def training_due(triggering_asset_events=None, params=None, dag_run=None) -> dict | bool:
            from mlops_pipeline.training import planning

            settings = run_settings(name)
            # The training job reads the events by kind (`retrain_requested`,
            # `features_online`), not by this use case's asset names.
            extras: dict[str, list[dict]] = {}
            for key, events in (triggering_asset_events or {}).items():
                kind = assets.kind_of(key.name)
                extras.setdefault(kind, []).extend(dict(event.extra or {}) for event in events)
            window_end, reason = planning.trigger_from_events(
                extras,
                params["window_end"],
                params["reason"],
                dag_run.run_after,
                settings.spec.cadence,
            )
            decision = planning.plan_training(
                settings,
                window_end,
                reason,
                planning.last_trained_window_end(settings),
                planning.validated_partitions_in_window(settings, window_end),
                settings.spec.training.split.partitions_needed,
            )
            print(f"training {'due' if decision.due else 'not due'}: {decision.why}")
            return decision.to_dict() if decision.due else False

        @task(outlets=[challenger], multiple_outputs=False)
        @fail_fast()
        def train(due: Pulled, dag_run=None, outlet_events=None) -> dict:
            from mlops_pipeline.training.job import TrainingRequest, train_and_register
            from mlops_pipeline.usecases.vocabulary import partition_from_key

            request = TrainingRequest(
                window_end=partition_from_key(due["window_end"]),
                reason=due["reason"],
                dag_id=dag_run.dag_id,
                run_id=dag_run.run_id,
            )
            outcome = train_and_register(run_settings(name), request)
            extra = {
                "model_name": outcome.model_name,
                "version": outcome.version,
                "run_id": outcome.run_id,
                "data_window": outcome.data_window,
            }
            outlet_events[challenger].extra = extra
            return {**extra, "metrics": outcome.metrics, "timings": outcome.timings}

        train(training_due())

    return train()
