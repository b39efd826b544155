"""Platform state for the MLOps view's tests, its bench and its screenshot, written by the
pipeline's own functions (ingestion, training, gates, decision records) into a home."""

from __future__ import annotations

import datetime as dt
import json

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.deployment import promotion as deployment
from mlops_pipeline.features.store import register_definitions
from mlops_pipeline.monitoring.nightly import REPORT, SUMMARY, night_dir
from mlops_pipeline.training.job import TrainingRequest, train_and_register
from mlops_pipeline.training.model import TrainingParams

# Nine validated days: enough for a time split (train, 3 validation, 3 test days).
DAYS = [dt.date(2025, 8, 1) + dt.timedelta(days=i) for i in range(9)]
ROWS = 400
QUARANTINE_DAY = DAYS[4]


def prepare_lake(settings: Settings, rows: int = ROWS) -> Settings:
    """Nine validated days (one with quarantined rows, the last with Data Docs) and
    registered feature definitions."""
    for day in DAYS:
        scenario = "out_of_range" if day == QUARANTINE_DAY else "clean"
        generate_day(settings.landing_dir, day, rows, scenario=scenario, file_format="parquet")
        ingest_day(settings.replace(build_data_docs=day == DAYS[-1]), day)
    register_definitions(settings)
    return settings


def train_and_decide(settings: Settings, params: TrainingParams, reason: str) -> str:
    """Train a version, run the gates on it, promote it if they pass, and record the decision
    as ``deploy_churn_model`` does."""
    version = train_and_register(settings, TrainingRequest(DAYS[-1], 28, params, reason)).version
    evaluation = deployment.evaluate_challenger(settings, version).to_dict()
    airflow = {"dag_id": "deploy_churn_model", "run_id": f"test__{reason}"}
    if evaluation["gates"]["passed"]:
        aliases = deployment.promote(settings, version)
        deployment.record_decision(settings, evaluation, "promoted", airflow, aliases=aliases)
    else:
        reasons = evaluation["gates"]["reasons"]
        deployment.record_decision(settings, evaluation, "rejected", airflow, reasons=reasons)
    return version


def night_record(night: dt.date, drift_share: float, champion: str, retrain: bool) -> dict:
    """A night record shaped as ``monitoring`` writes it (the fields ``status`` reads)."""
    return {
        "night": night.isoformat(),
        "status": "checked",
        "champion": {"version": champion},
        "rows": 400,
        "drift": {
            "drift_share": drift_share,
            "drifted_columns": ["monthly_charges"] if drift_share >= 0.2 else [],
        },
        "performance": {"roc_auc_drop": round(drift_share / 10, 4)},
        "decision": {
            "retrain": retrain,
            "reasons": ["2 of the last 3 nights drifted"] if retrain else [],
        },
    }


def record_nights(settings: Settings, count: int, champion: str = "1") -> list[dt.date]:
    """``count`` night records ending the day after the lake, each with an HTML report."""
    nights = [DAYS[-1] - dt.timedelta(days=count - 2 - i) for i in range(count)]
    for i, night in enumerate(nights):
        share = round((i % 10) / 20, 2)
        folder = night_dir(settings, night)
        storage.write_json(folder / SUMMARY, night_record(night, share, champion, share >= 0.4))
        (folder / REPORT).write_text(f"<html><body>Evidently report {night}</body></html>")
    return nights


def decision_files(settings: Settings) -> list[dict]:
    folder = settings.reports_dir / deployment.DECISIONS_DIR
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
