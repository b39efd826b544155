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


def test_records_are_kept_per_use_case(settings):
    from mlops_pipeline.deployment.promotion import decision_records, write_decision_record

    record = decision_record("promote", "rejected", settings.spec.model_name, "4")
    path = write_decision_record(settings, record, attach_to_run=None)
    assert path.parent == settings.decisions_dir
    assert settings.decisions_dir.name == settings.spec.name
    assert path.with_suffix(".md").read_text().startswith(f"# Promote: {record['model_name']} v4")
    assert [r["version"] for _, r in decision_records(settings)] == ["4"]
    other = settings.for_usecase("store_demand")
    assert other.decisions_dir != settings.decisions_dir


def test_an_unbounded_gate_renders_without_a_threshold():
    evaluation = {
        "challenger": {"version": "2"},
        "champion": None,
        "holdout": {"window": "2025-06-01..2025-06-03", "rows": 900},
        "gates": {
            "checks": [
                {"name": "floor:rmse", "value": 3.5, "threshold": None, "passed": True},
            ]
        },
    }
    text = decision_markdown(decision_record("promote", "promoted", "m", "2", evaluation))
    assert "| floor:rmse | 3.5000 | none | pass |" in text
