"""The Markdown of a decision record: what approvers and auditors read."""

from __future__ import annotations

from mlops_pipeline.deployment.promotion import decision_markdown, decision_record


def test_the_airflow_run_is_named_when_known_and_left_out_before():
    recorded = decision_record(
        "promote",
        "promoted",
        "churn-classifier",
        "3",
        airflow={"dag_id": "deploy_churn_model", "run_id": "manual__2025-06-09"},
    )
    text = decision_markdown(recorded)
    assert "- Airflow: dag_id `deploy_churn_model`, run_id `manual__2025-06-09`" in text
    awaiting = decision_markdown(decision_record("promote", "awaiting", "churn-classifier", "3"))
    assert "Airflow" not in awaiting and "v3" in awaiting
