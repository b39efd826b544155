"""Platform state for the MLOps view's tests, its bench and its screenshot, written by the
pipeline's own functions (ingestion, training, gates, decision records) into a home; and a
second, regression use case (``footfall``) beside the shipped churn one, for the tests that
run two use cases side by side."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import textwrap
from pathlib import Path

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage

# Nine validated days: enough for a time split (train, 3 validation, 3 test days).
DAYS = [dt.date(2025, 8, 1) + dt.timedelta(days=i) for i in range(9)]
ROWS = 400
QUARANTINE_DAY = DAYS[4]
# Model params merged into the declared ones: a version the gates promote, and one with nearly
# constant scores, below the quality floors, that they reject.
GOOD = {"max_iter": 60}
BAD = {"max_iter": 10, "learning_rate": 0.001, "max_leaf_nodes": 2}


def prepare_lake(settings: Settings, rows: int = ROWS) -> Settings:
    """Nine validated days (one with quarantined rows, the last with Data Docs) and
    registered feature definitions."""
    from mlops_pipeline.data.datagen import generate_day
    from mlops_pipeline.data.ingestion import ingest_day
    from mlops_pipeline.features.store import register_definitions

    for day in DAYS:
        scenario = "out_of_range" if day == QUARANTINE_DAY else "clean"
        generate_day(settings, day, rows, scenario=scenario, file_format="parquet")
        ingest_day(settings.replace(build_data_docs=day == DAYS[-1]), day)
    register_definitions(settings)
    return settings


def with_model_params(settings: Settings, params: dict) -> Settings:
    """``settings`` whose use case trains with ``params`` (merged into the declared ones
    through the overrides, as an operator would)."""
    overrides = json.loads(settings.usecase_overrides or "{}")
    usecase = overrides.setdefault(settings.usecase_name, {})
    model = usecase.setdefault("training", {}).setdefault("model", {})
    model["params"] = {**model.get("params", {}), **params}
    return settings.replace(usecase_overrides=json.dumps(overrides))


def train_and_decide(settings: Settings, params: dict, reason: str) -> str:
    """Train a version with the model ``params``, run the gates on it, promote it if they
    pass, and record the decision as the deploy DAG does."""
    from mlops_pipeline.deployment.decisions import record_decision
    from mlops_pipeline.deployment.evaluation import evaluate_challenger
    from mlops_pipeline.deployment.promotion import promote
    from mlops_pipeline.training.job import TrainingRequest, train_and_register

    if hasattr(params, "to_dict"):  # a params object of the training stage
        params = params.to_dict()
    trained = with_model_params(settings, params)
    version = train_and_register(trained, TrainingRequest(DAYS[-1], reason=reason)).version
    evaluation = evaluate_challenger(settings, version)
    airflow = {"dag_id": f"{settings.usecase_name}__deploy", "run_id": f"test__{reason}"}
    if evaluation.gates.passed:
        aliases = promote(settings, version)
        record_decision(settings, evaluation, "promoted", airflow, aliases=aliases)
    else:
        reasons = evaluation.gates.reasons
        record_decision(settings, evaluation, "rejected", airflow, reasons=reasons)
    return version


def night_record(
    night: dt.date,
    drift_share: float,
    champion: str,
    retrain: bool,
    metric: str = "roc_auc",
    drifting: str = "monthly_charges",
    others: tuple[str, ...] = (),
    reasons: list[str] | None = None,
) -> dict:
    """A night record shaped as ``monitoring`` writes it (the fields ``status`` and the view
    read): ``drifting``'s score is the night's share, ``others``' a fraction of it."""
    columns = {
        name: {"score": round(drift_share * (1 - j / 4), 4), "method": "wasserstein"}
        for j, name in enumerate((drifting, *others))
    }
    for column in columns.values():
        column.update(threshold=0.1, drifted=column["score"] >= 0.1)
    if reasons is None:
        reasons = (
            ["2 of the last 3 nights drifted"] if retrain else ["no drift over the thresholds"]
        )
    return {
        "night": night.isoformat(),
        "status": "checked",
        "champion": {"version": champion},
        "rows": 400,
        "drift": {
            "drift_share": drift_share,
            "drifted_columns": [drifting] if drift_share >= 0.2 else [],
            "columns": columns,
        },
        "performance": {"metric": metric, "drop": round(drift_share / 10, 4)},
        "decision": {
            "retrain": retrain,
            "reasons": reasons,
        },
    }


def cooldown_reason(requested: dt.date) -> str:
    return f"cooldown: retrain requested on {requested.isoformat()}, 1 partition(s) ago"


def record_nights(settings: Settings, count: int, champion: str = "1") -> list[dt.date]:
    """``count`` night records ending the day after the lake, each with an HTML report; a
    night that drifts the night after a retrain request is a "no" for the cooldown."""
    from mlops_pipeline.monitoring.records import REPORT, SUMMARY, night_dir

    spec = settings.spec
    nights = [DAYS[-1] - dt.timedelta(days=count - 2 - i) for i in range(count)]
    requested: dt.date | None = None
    for i, night in enumerate(nights):
        share = round((i % 10) / 20, 2)
        folder = night_dir(settings, night)
        cooling = share >= 0.4 and requested == night - dt.timedelta(days=1)
        record = night_record(
            night,
            share,
            champion,
            share >= 0.4 and not cooling,
            spec.primary_metric,
            spec.feature_columns[0],
            tuple(spec.feature_columns[1:3]),
            [cooldown_reason(night - dt.timedelta(days=1))] if cooling else None,
        )
        requested = night if record["decision"]["retrain"] else None
        storage.write_json(folder / SUMMARY, record)
        (folder / REPORT).write_text(f"<html><body>Evidently report {night}</body></html>")
    return nights


def record_scored_partitions(
    settings: Settings, days: list[dt.date], version: str, rows: int = 50
) -> None:
    """Predictions partitions shaped as the batch scoring DAG writes them (one Parquet file
    per partition, the columns of ``scoring.batch``): scores ``i / rows``, decided at 0.5."""
    import pandas as pd

    spec = settings.spec
    for day in days:
        scores = [i / rows for i in range(rows)]
        frame = pd.DataFrame(
            {
                spec.entity.key: range(1, rows + 1),
                spec.timestamp: pd.Timestamp(day, tz="UTC"),
                "score": scores,
                "decision": [s >= 0.5 for s in scores],
                "model_name": spec.model_name,
                "model_version": version,
                "feature_service": spec.features.service,
                "airflow_run_id": f"scheduled__{day.isoformat()}",
            }
        )
        path = storage.partition_dir(settings.batch_predictions_dir, day) / "part.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)


def record_shadow(
    settings: Settings, version: str, champion: str, requests: int, errors: int = 0
) -> None:
    """A live shadow log shaped as ``serving.shadow.LiveShadow`` writes it: one row per
    request, latency ``request + 1`` ms, the challenger's decision disagreeing on every
    fourth."""
    folder = settings.shadow_predictions_dir / f"date={DAYS[-1].isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for request in range(requests):
        champion_score = 0.9 if request % 2 else 0.1
        lines.append(
            {
                settings.spec.entity.key: request,
                "score": champion_score,
                "model_version": version,
                "decision": (champion_score >= 0.5) != (request % 4 == 0),
                "champion_score": champion_score,
                "champion_version": champion,
                "source": "features",
                "request": f"r{request}",
                "latency_ms": float(request + 1),
            }
        )
    for error in range(errors):
        lines.append({"model_version": version, "request": f"e{error}", "error": "boom"})
    (folder / "shadow.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def decision_files(settings: Settings) -> list[dict]:
    folder = settings.decisions_dir
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


# ---- a second use case: regression ---------------------------------------------------------

REGRESSION = "footfall"
# Daily visitors per shop. Small on purpose: one view of facts, one of the day's figures, no
# on-demand features; the numbers drift under ``covariate_drift``, the categories do not.
REGRESSION_DECLARATION = """
name: footfall
description: Visitors of a shop in a day, for staffing (a test use case of the regression path).
task: regression
entity: {name: shop, key: shop_id, description: A shop.}
timestamp: event_timestamp
label: visitors
dataset: shop_visits
cadence: daily
columns:
  shop_id: {kind: int, min: 1}
  event_timestamp: {kind: timestamp}
  floor_area: {kind: float, min: 0, max: 10000}
  district: {kind: category, values: [centre, suburb, outskirts]}
  open_sunday: {kind: bool}
  temperature: {kind: float, min: -40, max: 60}
  staff: {kind: int, min: 0, max: 200}
  visitors: {kind: float, min: 0}
features:
  views:
    shop_facts: {ttl: P30D, features: [floor_area, district, open_sunday]}
    shop_day: {ttl: P2D, features: [temperature, staff]}
  service: footfall_model_v1
training:
  split: {validation_partitions: 1, test_partitions: 1, window_partitions: 7}
  min_train_rows: 100
  model: {params: {max_iter: 60}}
drift: {min_partition_rows: 100}
serving: {score_field: expected_visitors}
"""
REGRESSION_SHIFTED = ("floor_area", "temperature", "staff")
REGRESSION_GENERATOR = textwrap.dedent(
    """
    import datetime as dt

    import numpy as np
    import pandas as pd

    DISTRICT = {"centre": 120.0, "suburb": 40.0, "outskirts": 0.0}


    def population(rows, seed):
        rng = np.random.default_rng([seed, 0])
        return pd.DataFrame(
            {
                "shop_id": np.arange(1, rows + 1),
                "floor_area": rng.uniform(100.0, 2000.0, rows),
                "district": rng.choice(list(DISTRICT), rows),
                "open_sunday": rng.random(rows) < 0.5,
            }
        )


    def snapshot(population, start, seed, covariate_drift, length):
        rng = np.random.default_rng([seed, start.toordinal()])
        rows = len(population)
        frame = population.copy()
        frame["event_timestamp"] = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(
            rng.integers(0, int(length.total_seconds()), rows), unit="s"
        )
        frame["temperature"] = rng.normal(15.0, 5.0, rows)
        frame["staff"] = rng.poisson(6.0, rows)
        if covariate_drift:
            frame["floor_area"] = frame["floor_area"] * 1.8
            frame["temperature"] = frame["temperature"] + 15.0
            frame["staff"] = frame["staff"] + 8
        frame["staff"] = frame["staff"].astype(np.int64)
        return frame


    def label(frame, rng, concept_drift):
        area = frame["floor_area"].to_numpy()
        staff = frame["staff"].to_numpy()
        temperature = frame["temperature"].to_numpy()
        district = frame["district"].map(DISTRICT).to_numpy()
        if concept_drift:  # the same shops, another mechanism
            mean = 600.0 - 0.1 * area + 2.0 * staff - 10.0 * temperature
        else:
            mean = 0.15 * area + 12.0 * staff + 3.0 * temperature + district
        return np.clip(mean + rng.normal(0.0, 15.0, len(area)), 0.0, None)
    """
)


def write_usecases(root: Path, shipped: tuple[str, ...] = ("churn",)) -> Path:
    """A use-cases root holding copies of the ``shipped`` folders and the regression one."""
    from mlops_pipeline.config import Settings as Platform

    source = Platform().usecases_dir
    root.mkdir(parents=True, exist_ok=True)
    for name in shipped:
        if not (root / name).exists():
            shutil.copytree(source / name, root / name)
    folder = root / REGRESSION
    folder.mkdir(exist_ok=True)
    (folder / "usecase.yaml").write_text(REGRESSION_DECLARATION.lstrip())
    (folder / "generator.py").write_text(REGRESSION_GENERATOR.lstrip())
    return root
