"""Batch scoring of one 1,000,000-entity partition with the champion (``MLOPS_BENCH_USECASE``,
churn unless set): point-in-time feature retrieval through the feature service, scoring and the
Parquet write, end to end in a fresh process, with the champion already loaded (the model load
is reported apart). Peak memory is compared with the predictions frame the run produces."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

from bench.common import median, run_python, save
from bench.features import D0, USECASE, build_lake

ENTITIES = 1_000_000
# A quick champion on small days: the bench times scoring, not training.
TRAIN_DAYS = 7
TRAIN_ROWS = 5_000
REPEATS = 2
GOAL_ROWS_PER_S = 200_000

_CHILD = r"""
import datetime as dt, json, sys, time, warnings
warnings.filterwarnings("ignore")
from mlops_pipeline.config import Settings
from mlops_pipeline.scoring.batch import load_scorer, score_partition
import feast, mlflow, mlflow.sklearn, pandas as pd, pyarrow.parquet
from bench.common import peak_rss_bytes, rss_bytes
settings = Settings(home=sys.argv[1], usecase=sys.argv[3], usecase_overrides=sys.argv[4])
started = time.perf_counter()
scorer = load_scorer(settings)
load = time.perf_counter() - started
baseline = rss_bytes()
started = time.perf_counter()
result = score_partition(settings, dt.date.fromisoformat(sys.argv[2]), {"run_id": "bench"}, scorer)
total = time.perf_counter() - started
peak = peak_rss_bytes()
frame = pd.read_parquet(result.path)
print(json.dumps({"total": total, "load": load, "timings": result.timings, "rows": result.rows,
                  "peak_rss": peak, "peak_over_baseline": peak - baseline,
                  "frame_bytes": int(frame.memory_usage(deep=True).sum()),
                  "file_bytes": __import__("os").path.getsize(result.path)}))
"""


def run() -> dict:
    from mlops_pipeline.data.datagen import generate_day
    from mlops_pipeline.data.ingestion import ingest_day
    from mlops_pipeline.deployment.promotion import promote
    from mlops_pipeline.features.store import register_definitions
    from mlops_pipeline.training.job import TrainingRequest, train_and_register

    root = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    print(f"batch_scoring: building {TRAIN_DAYS} training days and a champion", flush=True)
    lake = build_lake(root, entities=TRAIN_ROWS, days=TRAIN_DAYS)
    overrides = json.dumps(
        {lake.usecase_name: {"training": {"model": {"params": {"max_iter": 60}}}}}
    )
    settings = lake.replace(usecase_overrides=overrides)
    register_definitions(settings)
    window_end = D0 + dt.timedelta(days=TRAIN_DAYS - 1)
    outcome = train_and_register(settings, TrainingRequest(window_end, TRAIN_DAYS, reason="bench"))
    promote(settings, outcome.version)
    day = window_end + dt.timedelta(days=1)
    print(f"batch_scoring: landing and validating {ENTITIES:,} entities", flush=True)
    generate_day(settings, day, rows=ENTITIES, file_format="parquet")
    ingest_day(settings, day)
    # Not materialized: scoring reads the offline store only (the DAG's wait for
    # materialization is not part of the work measured), and loading 1,000,000 rows into the
    # embedded SQLite online store would take minutes.
    child_args = (str(settings.home), day.isoformat(), settings.usecase_name, overrides)
    env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    runs = []
    for attempt in range(REPEATS):
        print(f"batch_scoring: scoring run {attempt + 1} of {REPEATS}", flush=True)
        runs.append(run_python(_CHILD, *child_args, env=env))
    total = median([r["total"] for r in runs])
    steps = list(runs[0]["timings"])
    peak_over = median([r["peak_over_baseline"] for r in runs])
    results = {
        "rows": runs[0]["rows"],
        "total_s": round(total, 2),
        "rows_per_s": round(runs[0]["rows"] / total),
        "steps_s": {s: round(median([r["timings"][s] for r in runs]), 2) for s in steps},
        "model_load_s": round(median([r["load"] for r in runs]), 2),
        "peak_rss_mib": round(median([r["peak_rss"] for r in runs]) / 2**20),
        "peak_over_baseline_mib": round(peak_over / 2**20),
        "frame_mib": round(runs[0]["frame_bytes"] / 2**20, 1),
        "peak_over_frame": round(peak_over / runs[0]["frame_bytes"], 2),
        "file_mib": round(runs[0]["file_bytes"] / 2**20, 1),
    }
    shutil.rmtree(root)
    save("batch_scoring", results)
    return results


def report(results: dict) -> str:
    return "\n".join(
        [
            f"Batch scoring ({USECASE}), one partition of {results['rows']:,} entities, median "
            f"of {REPEATS} fresh processes (goal: >= {GOAL_ROWS_PER_S:,} rows/s end to end, "
            "peak memory < 3x the predictions frame)",
            "| step | seconds |",
            "|---|---|",
            *[f"| {step} | {value} |" for step, value in results["steps_s"].items()],
            f"| **retrieval + scoring + write** | **{results['total_s']}** |",
            f"{results['rows_per_s']:,} rows/s; champion load (apart) {results['model_load_s']} s.",
            f"Peak RSS {results['peak_rss_mib']} MiB, +{results['peak_over_baseline_mib']} MiB "
            f"over the process before scoring = {results['peak_over_frame']}x the predictions "
            f"frame ({results['frame_mib']} MiB in memory, {results['file_mib']} MiB on disk).",
        ]
    )
