"""
### Deploy the churn model (gated)

Runs when `train_churn_model` emits the Asset `churn_model_challenger` (or by hand with a
`version`), one run at a time:

1. **evaluate** re-scores the challenger and the current champion on the **same** frozen
   holdout (the challenger's test days, read through the feature service) and runs the gates
   of `include/mlops_pipeline/deployment/gates.py`: quality floors, no regression beyond a
   margin on any gated metric, strict improvement on ROC AUC (ties keep the champion), no segment
   regressing beyond its margin, calibration (Brier), p99 single-row latency and model size
   budgets, and a signature the serving schema accepts. The first model only has to clear
   the floors and budgets.
2. With `MLOPS_REQUIRE_APPROVAL=true`, a passing challenger waits in **approve** (Airflow's
   human-in-the-loop `ApprovalOperator`: the UI's Required Actions show the gate report);
   "Reject" skips the promotion and is recorded with the approver's name.
   **promote** (gates passed, approved): `previous_champion` -> the old champion, `champion` -> the
   challenger, both re-read and verified. **reject** (gates failed): the challenger version is
   tagged with the reasons; the champion is untouched.
   With `MLOPS_SERVING_URL` set, a smoke test then asks the running model server for the new
   version (`GET /model`, `POST /predict`) until `MLOPS_SMOKE_TIMEOUT_SECONDS`; if it does
   not serve it, the aliases are put back automatically and the run fails with the reason.
   With `MLOPS_MODEL_SERVER_CONTAINER` set (Docker Compose), **restart_model_server** then
   restarts that container through the Docker provider so it loads the new champion at once
   (and, with `MLOPS_SERVING_URL`, waits until it serves it); skipped otherwise.
3. Either way a **decision record** (JSON and Markdown: both models, the holdout window and
   partitions, every gate with value, threshold and verdict, the Airflow run) is logged on the
   challenger's run and kept under `MLOPS_HOME/reports/decisions`.

Alias moves run in the one-slot pool `model_alias_writes`.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Param, TriggerRule, dag, task

from mlops_pipeline.orchestration.approval import PromotionApproval
from mlops_pipeline.orchestration.assets import ALIAS_WRITES_POOL, churn_model_challenger
from mlops_pipeline.orchestration.retry_policy import retrying_tasks


@dag(
    schedule=[churn_model_challenger],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "deployment", "mlflow"],
    doc_md=__doc__,
    default_args=retrying_tasks("ml-platform"),
    params={
        "version": Param(
            None,
            type=["null", "string"],
            description="Version to evaluate on a manual run (default: the triggering event's "
            "version, else the `challenger` alias).",
        )
    },
)
def deploy_churn_model():
    @task(multiple_outputs=False)
    def evaluate(triggering_asset_events=None, params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.config import get_settings
        from mlops_pipeline.deployment.promotion import DeploymentError, evaluate_challenger

        version = params["version"]
        for events in (triggering_asset_events or {}).values():
            for event in events:
                version = (event.extra or {}).get("version") or version
        try:
            return evaluate_challenger(get_settings(), version).to_dict()
        except DeploymentError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task.branch
    def decide(evaluation: dict) -> str:
        from mlops_pipeline.config import get_settings

        if not evaluation["gates"]["passed"]:
            return "reject"
        return "approve" if get_settings().require_approval else "auto_approve"

    @task
    def auto_approve() -> str:
        return "gates (MLOPS_REQUIRE_APPROVAL is off)"

    approve = PromotionApproval(
        task_id="approve",
        promote_task_id="promote",
        reject_task_id="record_approver_rejection",
        subject=(
            "Promote {{ ti.xcom_pull(task_ids='evaluate')['model_name'] }} "
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
    def promote(dag_run=None, ti=None) -> dict:
        # The evaluation is pulled, not passed: an XCom argument would make `evaluate` an
        # upstream, and its success alone would satisfy this trigger rule on the reject path.
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_pipeline.config import get_settings
        from mlops_pipeline.deployment import promotion as deployment

        evaluation = ti.xcom_pull(task_ids="evaluate")
        settings = get_settings()
        version = evaluation["challenger"]["version"]
        airflow = {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id}
        decided_by = _approver(ti.xcom_pull(task_ids="approve", key="answer")) or ti.xcom_pull(
            task_ids="auto_approve"
        )
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
            airflow,
            reasons=reasons,
            aliases=aliases,
            decided_by=decided_by,
        )
        if reasons:
            # Deterministic: the server did not take the model; a retry would promote again.
            raise AirflowFailException(f"promotion of v{version} rolled back: {reasons[0]}")
        return {"aliases": aliases, "decision_record": str(path)}

    @task(multiple_outputs=False)
    def restart_model_server(ti=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops_pipeline.config import get_settings
        from mlops_pipeline.deployment import docker_target

        settings = get_settings()
        if not docker_target.configured(settings):
            raise AirflowSkipException("no Docker deploy target (MLOPS_MODEL_SERVER_CONTAINER)")
        champion = ti.xcom_pull(task_ids="promote")["aliases"]["champion"]
        return docker_target.restart_model_server(settings, champion).to_dict()

    @task(multiple_outputs=False)
    def reject(evaluation: dict, dag_run=None) -> dict:
        from mlops_pipeline.config import get_settings
        from mlops_pipeline.deployment import promotion as deployment

        reasons = evaluation["gates"]["reasons"]
        path = deployment.record_decision(
            get_settings(),
            evaluation,
            "rejected",
            {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id},
            reasons=reasons,
        )
        print("challenger rejected:\n" + "\n".join(reasons))
        return {"reasons": reasons, "decision_record": str(path)}

    @task(multiple_outputs=False)
    def record_approver_rejection(evaluation: dict, dag_run=None, ti=None) -> dict:
        """The approver chose "Reject": the promotion is skipped; record who and why."""
        from mlops_pipeline.config import get_settings
        from mlops_pipeline.deployment import promotion as deployment

        approver = _approver(ti.xcom_pull(task_ids="approve", key="answer"))
        reasons = [f"rejected by {approver}"]
        path = deployment.record_decision(
            get_settings(),
            evaluation,
            "rejected",
            {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id},
            reasons=reasons,
            decided_by=approver,
        )
        return {"reasons": reasons, "decision_record": str(path)}

    evaluation = evaluate()
    automatic = auto_approve()
    decide(evaluation) >> [automatic, approve, reject(evaluation)]
    [automatic, approve] >> promote() >> restart_model_server()
    approve >> record_approver_rejection(evaluation)


def _approver(answer: dict | None) -> str | None:
    if not answer:
        return None
    return f"{answer['by']} (Airflow HITL: {', '.join(answer['chosen'])} at {answer['at']})"


deploy_churn_model()
