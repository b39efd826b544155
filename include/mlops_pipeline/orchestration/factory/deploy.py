"""The deploy DAG: evaluate the challenger against the gates, ask a human when approval is
required, promote (with a smoke test and undo) or record the rejection.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, TriggerRule, dag, task

from mlops_pipeline.config import Settings
from mlops_pipeline.orchestration import dag_docs
from mlops_pipeline.orchestration.approval import PromotionApproval
from mlops_pipeline.orchestration.assets import ALIAS_WRITES_POOL, UseCaseAssets
from mlops_pipeline.orchestration.factory.defaults import (
    Pulled,
    dag_arguments,
    run_reference,
    run_settings,
)
from mlops_pipeline.orchestration.failures import fail_fast
from mlops_pipeline.orchestration.notifications import APPROVAL_PENDING, PROMOTED, PlatformNotifier
from mlops_pipeline.orchestration.retry_policy import retrying_tasks
from mlops_pipeline.usecases.loader import UseCase


def deploy_dag(settings: Settings, spec: UseCase, assets: UseCaseAssets) -> DAG:
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
        **dag_arguments(spec, "deploy", ["deployment", "mlflow"]),
    )
    def deploy() -> None:
        @task(multiple_outputs=False)
        @fail_fast()
        def evaluate(triggering_asset_events=None, params=None) -> dict:
            from mlops_pipeline.deployment.evaluation import evaluate_challenger

            version = params["version"]
            for events in (triggering_asset_events or {}).values():
                for event in events:
                    version = (event.extra or {}).get("version") or version
            return evaluate_challenger(run_settings(name), version).model_dump(mode="json")

        @task.branch
        @fail_fast()
        def decide(evaluation: Pulled) -> str:
            from mlops_pipeline.deployment.records import Evaluation

            if not Evaluation.model_validate(evaluation).gates.passed:
                return "reject"
            return "approve" if run_settings(name).require_approval else "auto_approve"

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
            notifiers=[PlatformNotifier(APPROVAL_PENDING)],
        )

        @task(
            pool=ALIAS_WRITES_POOL,
            multiple_outputs=False,
            trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            on_success_callback=PlatformNotifier(PROMOTED),
        )
        @fail_fast()
        def promote(dag_run=None, ti=None) -> dict:
            # The evaluation is pulled, not passed: an XCom argument would make `evaluate` an
            # upstream, and its success alone would satisfy this trigger rule on the reject path.
            from mlops_pipeline.deployment.promotion import promote_verified
            from mlops_pipeline.deployment.records import Evaluation

            evaluation = Evaluation.model_validate(ti.xcom_pull(task_ids="evaluate"))
            decided_by = _approver(ti.xcom_pull(task_ids="approve", key="answer"))
            promoted = promote_verified(
                run_settings(name),
                evaluation,
                run_reference(dag_run),
                decided_by or str(ti.xcom_pull(task_ids="auto_approve")),
            )
            return {k: promoted[k] for k in ("aliases", "decision_record")}

        @task(multiple_outputs=False)
        @fail_fast()
        def restart_model_server(ti=None) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from mlops_pipeline.deployment import docker_target

            settings = run_settings(name)
            if not docker_target.configured(settings):
                raise AirflowSkipException("no Docker deploy target (MLOPS_MODEL_SERVER_CONTAINER)")
            champion = ti.xcom_pull(task_ids="promote")["aliases"]["champion"]
            return docker_target.restart_model_server(settings, champion).to_dict()

        @task(multiple_outputs=False)
        @fail_fast()
        def reject(evaluation: Pulled, dag_run=None) -> dict:
            from mlops_pipeline.deployment.decisions import record_decision
            from mlops_pipeline.deployment.records import Evaluation

            pulled = Evaluation.model_validate(evaluation)
            reasons = pulled.gates.reasons
            path = record_decision(
                run_settings(name), pulled, "rejected", run_reference(dag_run), reasons=reasons
            )
            print("challenger rejected:\n" + "\n".join(reasons))
            return {"reasons": reasons, "decision_record": str(path)}

        @task(multiple_outputs=False)
        @fail_fast()
        def record_approver_rejection(evaluation: Pulled, dag_run=None, ti=None) -> dict:
            """The approver chose "Reject": the promotion is skipped; record who and why."""
            from mlops_pipeline.deployment.decisions import record_decision
            from mlops_pipeline.deployment.records import Evaluation

            approver = _approver(ti.xcom_pull(task_ids="approve", key="answer")) or "an approver"
            reasons = [f"rejected by {approver}"]
            path = record_decision(
                run_settings(name),
                Evaluation.model_validate(evaluation),
                "rejected",
                run_reference(dag_run),
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


def _approver(answer: dict | None) -> str | None:
    if not answer:
        return None
    return f"{answer['by']} (Airflow HITL: {', '.join(answer['chosen'])} at {answer['at']})"
