"""Night records: typed as they are written, read back by the k-of-n logic and ``status``, and
handed on through XCom to the retrain request."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from mlops_pipeline.config import get_settings
from mlops_pipeline.data import storage
from mlops_pipeline.monitoring import records
from mlops_pipeline.monitoring.policy import Decision, NightFlags, RetrainPolicy, decide
from mlops_pipeline.training.planning import trigger_from_events

NIGHT = dt.date(2025, 6, 10)
POLICY = RetrainPolicy.from_spec(get_settings().spec)


def _checked(night: dt.date, retrain: bool, drifted: bool = True) -> records.NightRecord:
    return records.NightRecord(
        usecase="churn",
        model_name="churn-classifier",
        night=night,
        checked_at="2025-06-11T02:00:03+00:00",
        rows=20_000,
        airflow={"dag_id": "churn__monitor_drift", "run_id": "scheduled__1"},
        policy=POLICY,
        status=records.CHECKED,
        champion=records.ChampionRef(version="3", run_id="run-3"),
        drift=records.DriftSummary(
            drift_share=0.3,
            drifted_columns=["monthly_charges"],
            columns={
                "monthly_charges": records.ColumnDrift(
                    score=0.4, method="wasserstein", threshold=0.1, drifted=True
                )
            },
            rows_current=20_000,
            rows_reference=100_000,
        ),
        prediction=records.PredictionDrift(
            score=0.05,
            method="wasserstein",
            threshold=0.1,
            drifted=False,
            source="batch scoring",
            rows=20_000,
            mean_current=0.31,
            mean_reference=0.27,
        ),
        performance=records.Performance(
            metric="roc_auc", drop=0.02, rows=20_000, higher_is_better=True, value=0.8
        ),
        decision=Decision(
            retrain=retrain,
            reasons=["data drift: share 0.30 >= 0.20 (monthly_charges)"],
            drifted=drifted,
            nights_flagged=[night],
        ),
        report_html="/reports/report.html",
        mlflow_run_id="night-run",
        timings={"load": 0.5},
    )


def test_a_night_record_round_trips_through_its_summary(settings):
    record = _checked(NIGHT, retrain=True)
    path = records.write_record(settings, record)
    assert path == records.night_dir(settings, NIGHT) / records.SUMMARY
    assert records.read_record(settings, NIGHT) == record
    on_disk = json.loads(path.read_text())
    assert on_disk["night"] == "2025-06-10" and on_disk["decision"]["nights_flagged"] == [
        "2025-06-10"
    ]
    assert on_disk["policy"]["nights_window"] == POLICY.nights_window
    assert records.night_record_json(settings, NIGHT) == on_disk
    assert records.read_record(settings, NIGHT - dt.timedelta(days=1)) is None


def test_a_record_written_before_records_were_typed_still_reads(settings):
    """A night without a champion as the untyped check wrote it (policy as a plain dict)."""
    storage.write_json(
        records.night_dir(settings, NIGHT) / records.SUMMARY,
        {
            "usecase": "churn",
            "model_name": "churn-classifier",
            "night": "2025-06-10",
            "checked_at": "2025-06-11T02:00:03+00:00",
            "rows": 20_000,
            "airflow": {},
            "policy": dataclasses.asdict(POLICY),
            "status": "no champion",
            "decision": {
                "retrain": False,
                "reasons": ["no champion to monitor yet"],
                "drifted": False,
                "nights_flagged": [],
                "last_request": None,
            },
        },
    )
    record = records.read_record(settings, NIGHT)
    assert record.status == records.NO_CHAMPION and record.policy == POLICY
    assert record.champion is None and record.drift is None
    (night,) = records.latest_nights(settings)
    assert night["champion_version"] is None and night["drift_share"] is None


def test_the_k_of_n_logic_reads_the_decisions_the_records_keep(settings):
    yesterday = NIGHT - dt.timedelta(days=1)
    records.write_record(settings, _checked(yesterday, retrain=False))
    earlier = records.earlier_decisions(settings, NIGHT, POLICY)
    assert list(earlier) == [yesterday] and earlier[yesterday].drifted
    tonight = NightFlags(rows=20_000, drift_share=0.3, drifted_columns=["monthly_charges"])
    decision = decide(NIGHT, tonight, earlier, POLICY)
    assert decision.retrain is True and decision.nights_flagged == [yesterday, NIGHT]


def test_the_night_goes_through_xcom_to_the_retrain_request(settings):
    record = _checked(NIGHT, retrain=True)
    pulled = json.loads(json.dumps(records.NightOutcome.of(record).model_dump(mode="json")))
    outcome = records.NightOutcome.model_validate(pulled)
    assert outcome.retrain is True and outcome.champion_version == "3"
    extra = outcome.retrain_event()
    assert extra["date"] == "2025-06-10" and extra["nights_flagged"] == ["2025-06-10"]
    assert extra["performance"]["metric"] == "roc_auc" and extra["report"] == record.report_html
    window_end, reason = trigger_from_events({"retrain_requested": [extra]}, None, "manual", NIGHT)
    assert window_end == NIGHT and reason == "drift: " + record.decision.reasons[0]
