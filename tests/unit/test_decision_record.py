"""Decision records: the Markdown approvers and auditors read, and the typed record as it
crosses XCom and is kept on disk."""

from __future__ import annotations

import json

from mlops_pipeline.deployment.decisions import (
    decision_record,
    decision_records,
    latest_decisions,
    read_decisions,
    write_decision_record,
)
from mlops_pipeline.deployment.records import DecisionRecord, Evaluation, decision_markdown


def _evaluation(champion: dict | None = None) -> Evaluation:
    return Evaluation.model_validate(
        {
            "model_name": "m",
            "challenger": {
                "version": "2",
                "run_id": "run-2",
                "threshold": 0.31,
                "metrics": {"roc_auc": 0.81},
                "segments": {"plan=basic": [420, 0.79]},
            },
            "champion": champion,
            "holdout": {
                "window": "2025-06-01..2025-06-03",
                "rows": 900,
                "partitions": [{"date": "2025-06-01", "validation_id": "v-1"}],
            },
            "gates": {
                "passed": True,
                "first_model": champion is None,
                "checks": [
                    {"name": "floor:rmse", "value": 3.5, "threshold": None, "passed": True},
                    {
                        "name": "signature:serving_schema",
                        "value": "True",
                        "threshold": "True",
                        "passed": True,
                    },
                ],
                "reasons": [],
            },
        }
    )


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
    record = decision_record("promote", "rejected", settings.spec.model_name, "4")
    path = write_decision_record(settings, record, attach_to_run=None)
    assert path.parent == settings.decisions_dir
    assert settings.decisions_dir.name == settings.spec.name
    assert path.with_suffix(".md").read_text().startswith(f"# Promote: {record.model_name} v4")
    assert [r.version for _, r in read_decisions(settings)] == ["4"]
    other = settings.for_usecase("store_demand")
    assert other.decisions_dir != settings.decisions_dir


def test_an_unbounded_gate_renders_without_a_threshold():
    text = decision_markdown(decision_record("promote", "promoted", "m", "2", _evaluation()))
    assert "| floor:rmse | 3.5000 | none | pass |" in text
    assert "- Champion: none (first model)" in text and "- Challenger: v2" in text


def test_an_evaluation_crosses_xcom_with_the_approvers_markdown():
    evaluation = _evaluation()
    pulled = json.loads(json.dumps(evaluation.model_dump(mode="json")))
    # What the approval step's templates read.
    assert pulled["challenger"]["version"] == "2"
    assert "| signature:serving_schema | True | True | pass |" in pulled["report_markdown"]
    assert "awaiting decision" in pulled["report_markdown"]
    assert Evaluation.model_validate(pulled) == evaluation
    scores = evaluation.challenger.gate_scores()
    assert scores.segments["plan=basic"] == (420, 0.79) and scores.metrics["roc_auc"] == 0.81


def test_a_record_round_trips_through_its_file(settings):
    record = decision_record(
        "promote",
        "promoted",
        "m",
        "2",
        _evaluation(),
        aliases={"champion": "2", "previous_champion": None},
        airflow={"dag_id": "d", "run_id": "r"},
        smoke_test={"url": "http://server", "version": "2", "status": 200},
    )
    path = write_decision_record(settings, record, attach_to_run=None)
    ((read_path, read),) = read_decisions(settings)
    assert read_path == path and read == record
    on_disk = json.loads(path.read_text())
    assert on_disk["evaluation"]["challenger"]["segments"] == {"plan=basic": [420, 0.79]}
    assert on_disk["aliases"] == {"champion": "2", "previous_champion": None}
    # The views render the records as JSON; status keeps five fields of each.
    assert decision_records(settings)[0][1] == on_disk
    assert latest_decisions(settings) == [
        {k: on_disk[k] for k in ("decided_at", "action", "outcome", "version", "reasons")}
    ]


def test_a_record_written_before_records_were_typed_still_reads(settings):
    """The layout of the untyped records: the smoke test inside the evaluation, the approver's
    Markdown beside it."""
    older = _evaluation().model_dump(mode="json") | {"smoke_test": None}
    settings.decisions_dir.mkdir(parents=True)
    (settings.decisions_dir / "20250610T020000+0000-promote-v2.json").write_text(
        json.dumps(
            {
                "action": "promote",
                "outcome": "promoted",
                "model_name": "m",
                "version": "2",
                "decided_at": "2025-06-10T02:00:00+00:00",
                "decided_by": "gates",
                "evaluation": older,
                "reasons": [],
                "aliases": {"champion": "2", "previous_champion": None},
                "airflow": {},
            }
        )
    )
    ((_, record),) = read_decisions(settings)
    assert isinstance(record, DecisionRecord) and record.evaluation is not None
    assert record.evaluation.challenger.threshold == 0.31 and record.smoke_test is None
