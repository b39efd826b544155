"""One factory builds every DAG of a use case from its declaration.

``dags/<usecase>.py`` calls ``build_dags("<usecase>")`` and puts the six DAGs in its globals:
``<usecase>__ingest`` -> ``__materialize`` -> ``__train`` -> ``__deploy`` chained by the use
case's own assets, ``__monitor_drift`` nightly (it may request a retrain), ``__rollback`` by hand.

One thin file per use case rather than one file looping over all of them: a bad declaration is
then an import error of its own file only, which the UI shows with the spec's message, while the
other use cases keep their DAGs; and the scheduler re-parses a use case alone when it changes.

Parse stays cheap: this module reads the declaration (one YAML file, pydantic) and environment
settings, nothing else; every task imports the stage it runs inside its body and reads
``get_settings().for_usecase(name)`` at run time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pendulum
from airflow.sdk import (
    DAG,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    Param,
    PokeReturnValue,
    TriggerRule,
    dag,
    task,
)

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.orchestration import dag_docs
from mlops_pipeline.orchestration.approval import PromotionApproval
from mlops_pipeline.orchestration.assets import (
    ALIAS_WRITES_POOL,
    SEPARATOR,
    UseCaseAssets,
    usecase_assets,
)
from mlops_pipeline.orchestration.failures import fail_fast
from mlops_pipeline.orchestration.retry_policy import local_tasks, retrying_tasks
from mlops_pipeline.usecases.loader import UseCase

# An upstream task's result: an XComArg while the DAG is built, its value when the task runs.
Pulled = Any

START_DATE = pendulum.datetime(2025, 1, 1, tz="UTC")
STAGES = ("ingest", "materialize", "train", "deploy", "rollback", "monitor_drift")


def dag_id(usecase: str, stage: str) -> str:
    return f"{usecase}{SEPARATOR}{stage}"


def build_dags(usecase_name: str) -> dict[str, DAG]:
    """The DAGs of ``usecase_name``, by dag_id. Raises ``SpecError`` (listing every problem of
    the declaration) before building any."""
    settings = get_settings().for_usecase(usecase_name)
    spec = settings.spec
    assets = usecase_assets(spec.name)
    builders: dict[str, Callable[[Settings, UseCase, UseCaseAssets], DAG]] = {
        "ingest": _ingest,
        "materialize": _materialize,
        "train": _train,
        "deploy": _deploy,
        "rollback": _rollback,
        "monitor_drift": _monitor_drift,
    }
    return {dag_id(spec.name, stage): builders[stage](settings, spec, assets) for stage in STAGES}


def _settings(usecase: str) -> Settings:
    """The use case's settings as the task runs (the environment of the worker, not the
    parser's)."""
    return get_settings().for_usecase(usecase)


def _common(spec: UseCase, stage: str, tags: list[str]) -> dict[str, Any]:
    return {
        "dag_id": dag_id(spec.name, stage),
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["mlops", spec.name, *tags],
    }


def _ingest(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name, validated = spec.name, assets.validated_data

    @dag(
        # Data intervals, not trigger times: the run for a partition starts once it is over.
        schedule=CronDataIntervalTimetable(spec.cadence.cron, timezone="UTC"),
        doc_md=dag_docs.ingest_doc(spec, settings, assets),
        default_args=local_tasks(spec.owner),
        **_common(spec, "ingest", ["ingestion", "data-quality"]),
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
            from mlops_pipeline.data.storage import find_landing_file

            path = find_landing_file(_settings(name), data_interval_start.date())
            return PokeReturnValue(is_done=path is not None, xcom_value=str(path) if path else None)

        # Transient faults (a full disk, a flaky mount) retry; a rejected batch fails at once.
        @task(outlets=[validated])
        @fail_fast()
        def validate_and_split(landing_file: Pulled, data_interval_start=None, outlet_events=None):
            from mlops_pipeline.data.ingestion import ingest_day

            report = ingest_day(_settings(name), data_interval_start.date())
            outlet_events[validated].extra = report.asset_extra
            return report.asset_extra

        validate_and_split(wait_for_landing_file())

    return ingest()


def _materialize(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name, online = spec.name, assets.features_online

    @dag(
        schedule=[assets.validated_data],
        doc_md=dag_docs.materialize_doc(spec, settings, assets),
        default_args=retrying_tasks(spec.owner),
        params={
            "dates": Param(
                [],
                type="array",
                items={"type": "string", "format": "date"},
                description="Partitions to materialize on a manual run (asset-triggered runs "
                "use the triggering events).",
            )
        },
        **_common(spec, "materialize", ["features", "feast"]),
    )
    def materialize() -> None:
        @task(multiple_outputs=False)
        @fail_fast()
        def register_definitions() -> dict:
            from mlops_pipeline.features.store import register_definitions

            return register_definitions(_settings(name)).to_dict()

        @task
        @fail_fast()
        def days_to_materialize(triggering_asset_events=None, params=None) -> list[str]:
            from mlops_pipeline.features.materialization import days_from_asset_extras

            extras = [{"date": day} for day in (params or {}).get("dates") or []]
            for events in (triggering_asset_events or {}).values():
                extras += [dict(event.extra or {}) for event in events]
            return [day.isoformat() for day in days_from_asset_extras(extras)]

        @task(multiple_outputs=False)
        @fail_fast()
        def materialize(days: Pulled) -> dict:
            from mlops_pipeline.features.materialization import (
                days_interval,
                materialize_interval,
            )

            settings = _settings(name)
            days_of = [dt.date.fromisoformat(d) for d in days]
            start, end = days_interval(days_of, settings.spec.cadence)
            return materialize_interval(settings, start, end).to_dict()

        @task(outlets=[online], multiple_outputs=False)
        @fail_fast()
        def check_online(days: Pulled, materialized: Pulled, outlet_events=None) -> dict:
            from mlops_pipeline.features.materialization import check_online

            settings = _settings(name)
            checks = [check_online(settings, dt.date.fromisoformat(d)).to_dict() for d in days]
            extra = {"dates": days, "start": materialized["start"], "end": materialized["end"]}
            outlet_events[online].extra = extra
            return {**extra, "checks": checks}

        days = days_to_materialize()
        registered = register_definitions()
        materialized = materialize(days)
        registered >> materialized
        check_online(days, materialized)

    return materialize()


def _train(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name, challenger = spec.name, assets.challenger

    @dag(
        schedule=(assets.features_online | assets.retrain_requested),
        doc_md=dag_docs.train_doc(spec, settings, assets),
        default_args=retrying_tasks(spec.owner),
        params={
            "window_end": Param(
                None,
                type=["null", "string"],
                format="date",
                description="Last partition of the training window on a manual run (default: "
                "the one before the run).",
            ),
            "reason": Param("manual", type="string", description="Why this model is trained."),
        },
        **_common(spec, "train", ["training", "mlflow"]),
    )
    def train() -> None:
        @task.short_circuit
        @fail_fast()
        def training_due(triggering_asset_events=None, params=None, dag_run=None) -> dict | bool:
            from mlops_pipeline.training import job

            # The training job reads the events by kind (`retrain_requested`,
            # `features_online`), not by this use case's asset names.
            extras: dict[str, list[dict]] = {}
            for key, events in (triggering_asset_events or {}).items():
                kind = assets.kind_of(key.name)
                extras.setdefault(kind, []).extend(dict(event.extra or {}) for event in events)
            window_end, reason = job.trigger_from_events(
                extras, params["window_end"], params["reason"], dag_run.run_after.date()
            )
            settings = _settings(name)
            decision = job.plan_training(
                settings,
                window_end,
                reason,
                job.last_trained_window_end(settings),
                job.validated_days_in_window(settings, window_end),
                settings.spec.training.split.partitions_needed,
            )
            print(f"training {'due' if decision.due else 'not due'}: {decision.why}")
            return decision.to_dict() if decision.due else False

        @task(outlets=[challenger], multiple_outputs=False)
        @fail_fast()
        def train(due: Pulled, dag_run=None, outlet_events=None) -> dict:
            from mlops_pipeline.training.job import TrainingRequest, train_and_register

            request = TrainingRequest(
                window_end=dt.date.fromisoformat(due["window_end"]),
                reason=due["reason"],
                dag_id=dag_run.dag_id,
                run_id=dag_run.run_id,
            )
            outcome = train_and_register(_settings(name), request)
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


def _deploy(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name = spec.name

    @dag(
        schedule=[assets.challenger],
        doc_md=dag_docs.deploy_doc(spec, settings, assets),
        default_args=retrying_tasks(spec.owner),
        params={
            "version": Param(
                None,
                type=["null", "string"],
                description="Version to evaluate on a manual run (default: the triggering "
                "event's version, else the `challenger` alias).",
            )
        },
        **_common(spec, "deploy", ["deployment", "mlflow"]),
    )
    def deploy() -> None:
        @task(multiple_outputs=False)
        @fail_fast()
        def evaluate(triggering_asset_events=None, params=None) -> dict:
            from mlops_pipeline.deployment.promotion import evaluate_challenger

            version = params["version"]
            for events in (triggering_asset_events or {}).values():
                for event in events:
                    version = (event.extra or {}).get("version") or version
            return evaluate_challenger(_settings(name), version).to_dict()

        @task.branch
        @fail_fast()
        def decide(evaluation: Pulled) -> str:
            if not evaluation["gates"]["passed"]:
                return "reject"
            return "approve" if _settings(name).require_approval else "auto_approve"

        @task
        @fail_fast()
        def auto_approve() -> str:
            return "gates (MLOPS_REQUIRE_APPROVAL is off)"

        approve = PromotionApproval(
            task_id="approve",
            promote_task_id="promote",
            reject_task_id="record_approver_rejection",
            subject=(
                f"Promote {spec.model_name} "
                "v{{ ti.xcom_pull(task_ids='evaluate')['challenger']['version'] }} to champion?"
            ),
            body="{{ ti.xcom_pull(task_ids='evaluate')['report_markdown'] }}",
            response_timeout=dt.timedelta(days=3),
            retries=0,
        )

        @task(
            pool=ALIAS_WRITES_POOL,
            multiple_outputs=False,
            trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        )
        @fail_fast()
        def promote(dag_run=None, ti=None) -> dict:
            # The evaluation is pulled, not passed: an XCom argument would make `evaluate` an
            # upstream, and its success alone would satisfy this trigger rule on the reject path.
            from mlops_pipeline.deployment import promotion as deployment
            from mlops_pipeline.failures import PermanentFailure

            evaluation = ti.xcom_pull(task_ids="evaluate")
            settings = _settings(name)
            version = evaluation["challenger"]["version"]
            decided_by = _approver(ti.xcom_pull(task_ids="approve", key="answer"))
            aliases = deployment.promote(settings, version)
            outcome, reasons, smoke = "promoted", [], None
            if settings.serving_url:
                try:
                    smoke = deployment.smoke_test(settings, version)
                except deployment.SmokeTestFailed as exc:
                    aliases = deployment.undo_promotion(settings, aliases)
                    outcome, reasons = "rolled back (smoke test failed)", [str(exc)]
            path = deployment.record_decision(
                settings,
                {**evaluation, "smoke_test": smoke},
                outcome,
                _airflow(dag_run),
                reasons=reasons,
                aliases=aliases,
                decided_by=decided_by or str(ti.xcom_pull(task_ids="auto_approve")),
            )
            if reasons:
                # Deterministic: the server did not take the model; a retry would promote again.
                raise PermanentFailure(f"promotion of v{version} rolled back: {reasons[0]}")
            return {"aliases": aliases, "decision_record": str(path)}

        @task(multiple_outputs=False)
        @fail_fast()
        def restart_model_server(ti=None) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from mlops_pipeline.deployment import docker_target

            settings = _settings(name)
            if not docker_target.configured(settings):
                raise AirflowSkipException("no Docker deploy target (MLOPS_MODEL_SERVER_CONTAINER)")
            champion = ti.xcom_pull(task_ids="promote")["aliases"]["champion"]
            return docker_target.restart_model_server(settings, champion).to_dict()

        @task(multiple_outputs=False)
        @fail_fast()
        def reject(evaluation: Pulled, dag_run=None) -> dict:
            from mlops_pipeline.deployment import promotion as deployment

            reasons = evaluation["gates"]["reasons"]
            path = deployment.record_decision(
                _settings(name), evaluation, "rejected", _airflow(dag_run), reasons=reasons
            )
            print("challenger rejected:\n" + "\n".join(reasons))
            return {"reasons": reasons, "decision_record": str(path)}

        @task(multiple_outputs=False)
        @fail_fast()
        def record_approver_rejection(evaluation: Pulled, dag_run=None, ti=None) -> dict:
            """The approver chose "Reject": the promotion is skipped; record who and why."""
            from mlops_pipeline.deployment import promotion as deployment

            approver = _approver(ti.xcom_pull(task_ids="approve", key="answer")) or "an approver"
            reasons = [f"rejected by {approver}"]
            path = deployment.record_decision(
                _settings(name),
                evaluation,
                "rejected",
                _airflow(dag_run),
                reasons=reasons,
                decided_by=approver,
            )
            return {"reasons": reasons, "decision_record": str(path)}

        evaluation = evaluate()
        automatic = auto_approve()
        decide(evaluation) >> [automatic, approve, reject(evaluation)]
        [automatic, approve] >> promote() >> restart_model_server()
        approve >> record_approver_rejection(evaluation)

    return deploy()


def _rollback(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
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
            "reason": Param("manual rollback", type="string"),
        },
        **_common(spec, "rollback", ["deployment", "mlflow"]),
    )
    def rollback() -> None:
        @task(pool=ALIAS_WRITES_POOL, multiple_outputs=False)
        @fail_fast()
        def roll_back(params=None, dag_run=None) -> dict:
            from mlops_pipeline.deployment import promotion as deployment
            from mlops_pipeline.deployment import registry

            settings = _settings(name)
            model = settings.spec.model_name
            aliases = deployment.rollback(settings, params["target"])
            version = aliases["champion"]
            run_id = registry.client(settings).get_model_version(model, version).run_id
            record = deployment.decision_record(
                "rollback",
                "rolled back",
                model,
                version,
                reasons=[params["reason"]],
                aliases=aliases,
                decided_by=f"manual ({dag_run.run_id})",
                airflow=_airflow(dag_run),
            )
            path = deployment.write_decision_record(settings, record, run_id)
            return {"aliases": aliases, "decision_record": str(path)}

        roll_back()

    return rollback()


def _monitor_drift(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
    name, retrain = spec.name, assets.retrain_requested

    @dag(
        # The interval makes each run's data interval end at its trigger time; the partition
        # checked is the last one completed by then.
        schedule=CronTriggerTimetable(
            settings.drift_schedule, timezone="UTC", interval=spec.cadence.length
        ),
        doc_md=dag_docs.monitor_drift_doc(spec, settings, assets),
        default_args=retrying_tasks(spec.owner),
        params={
            "date": Param(
                None,
                type=["null", "string"],
                format="date",
                description="Partition to check (default: the last one completed before the "
                "run's data interval ends).",
            )
        },
        **_common(spec, "monitor_drift", ["monitoring", "drift", "evidently"]),
    )
    def monitor_drift() -> None:
        @task(multiple_outputs=False)
        @fail_fast()
        def check(data_interval_end=None, params=None, dag_run=None) -> dict:
            from mlops_pipeline.monitoring.nightly import run_nightly_check

            settings = _settings(name)
            cadence = settings.spec.cadence
            night = (
                dt.date.fromisoformat(params["date"])
                if params["date"]
                else cadence.partition_of(data_interval_end.date()) - cadence.length
            )
            record = run_nightly_check(settings, night, _airflow(dag_run))
            decision = record["decision"]
            print(f"{night}: retrain={decision['retrain']}: " + "; ".join(decision["reasons"]))
            return {
                "date": record["night"],
                "status": record["status"],
                "rows": record["rows"],
                "champion_version": (record.get("champion") or {}).get("version"),
                "drift_share": (record.get("drift") or {}).get("drift_share"),
                "drifted_columns": (record.get("drift") or {}).get("drifted_columns"),
                "performance": record.get("performance"),
                "retrain": decision["retrain"],
                "reasons": decision["reasons"],
                "nights_flagged": decision["nights_flagged"],
                "report": record.get("report_html"),
            }

        @task.short_circuit
        @fail_fast()
        def retrain_needed(result: Pulled) -> bool:
            return bool(result["retrain"])

        # The event is emitted only when this task succeeds, and it only runs on nights that
        # decided to retrain.
        @task(outlets=[retrain], multiple_outputs=False)
        @fail_fast()
        def request_retrain(result: Pulled, outlet_events=None) -> dict:
            extra = {
                "date": result["date"],
                "reason": "; ".join(result["reasons"]),
                **{
                    key: result[key]
                    for key in (
                        "drift_share",
                        "drifted_columns",
                        "performance",
                        "nights_flagged",
                        "champion_version",
                        "report",
                    )
                },
            }
            outlet_events[retrain].extra = extra
            return extra

        result = check()
        retrain_needed(result) >> request_retrain(result)

    return monitor_drift()


def _airflow(dag_run: Any) -> dict[str, str]:
    return {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id}


def _approver(answer: dict | None) -> str | None:
    if not answer:
        return None
    return f"{answer['by']} (Airflow HITL: {', '.join(answer['chosen'])} at {answer['at']})"
