"""What the batch scoring DAG and the live shadow left: the last scored partitions (rows, model
version, score distribution) and the current challenger's shadow comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings

SCORED_PARTITIONS = 7
HISTOGRAM_BINS = 20


def _histogram(scores: Any, classifier: bool) -> dict[str, list[float]]:
    import numpy as np

    if not len(scores):
        return {"edges": [], "counts": []}
    # A classifier's scores are probabilities: fixed bins compare across partitions.
    span = (0.0, 1.0) if classifier else (float(np.min(scores)), float(np.max(scores)))
    counts, edges = np.histogram(scores, bins=HISTOGRAM_BINS, range=span)
    return {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()}


def _partition(path: Path, classifier: bool) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq

    from mlops_pipeline.scoring.batch import AIRFLOW_RUN_ID, DECISION, MODEL_VERSION, SCORE

    present = set(pq.read_schema(path).names)
    wanted = [c for c in (SCORE, DECISION, MODEL_VERSION, AIRFLOW_RUN_ID) if c in present]
    table = pq.read_table(path, columns=wanted)
    scores = table.column(SCORE).to_numpy() if SCORE in present else np.empty(0)
    summary: dict[str, Any] = {
        "rows": table.num_rows,
        "model_versions": (
            sorted({str(v) for v in table.column(MODEL_VERSION).unique().to_pylist()})
            if MODEL_VERSION in present
            else []
        ),
        "airflow_run_ids": (
            sorted({str(v) for v in table.column(AIRFLOW_RUN_ID).unique().to_pylist()})
            if AIRFLOW_RUN_ID in present
            else []
        ),
        "histogram": _histogram(scores, classifier),
    }
    if len(scores):
        p10, p50, p90 = np.quantile(scores, [0.1, 0.5, 0.9]).tolist()
        summary["scores"] = {"mean": float(np.mean(scores)), "p10": p10, "p50": p50, "p90": p90}
        if DECISION in present:
            summary["scores"]["positive_share"] = float(
                np.mean(table.column(DECISION).to_numpy(zero_copy_only=False))
            )
    return summary


def scored_partitions(settings: Settings, limit: int = SCORED_PARTITIONS) -> list[dict[str, Any]]:
    """The newest ``limit`` predictions partitions, newest first."""
    from mlops_pipeline.data import storage
    from mlops_pipeline.scoring.batch import PREDICTIONS_FILE
    from mlops_pipeline.usecases.vocabulary import partition_key

    root = settings.batch_predictions_dir
    rows = []
    for day in reversed(storage.partition_days(root)[-limit:]):
        path = storage.partition_dir(root, day) / PREDICTIONS_FILE
        if path.is_file():
            rows.append(
                {"date": partition_key(day), **_partition(path, settings.spec.is_classifier)}
            )
    return rows


def shadow_state(settings: Settings, models: dict[str, Any]) -> dict[str, Any]:
    """The live shadow log's summary of the current challenger, its decisions compared with
    the champion's at the champion's threshold; ``summary`` None without a challenger (or
    when it is the champion: the model server shadows nothing then)."""
    from mlops_pipeline.serving.shadow import shadow_summary

    challenger = models["aliases"].get("challenger")
    champion = models["aliases"].get("champion")
    state: dict[str, Any] = {
        "enabled": settings.serving_shadow,
        "challenger": challenger,
        "champion": champion,
        "summary": None,
    }
    if challenger is None or challenger == champion:
        state["challenger"] = None
        return state
    threshold = next(
        (v.get("threshold") for v in models["versions"] if v["version"] == champion), None
    )
    state["summary"] = shadow_summary(
        settings.shadow_predictions_dir, challenger, threshold=threshold
    ).to_dict()
    return state
