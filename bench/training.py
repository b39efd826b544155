"""The whole training task on 30 days x 20,000 entities of the benchmarked use case
(``MLOPS_BENCH_USECASE``, default churn): training set, fit, calibration, evaluation, SHAP,
MLflow logging and registration; time per step and peak memory, in fresh processes (median
of 3)."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from bench.common import median, run_python, save
from bench.features import D0, build_lake

DAYS = 30
ENTITIES = 20_000
REPEATS = 3

_CHILD = r"""
import datetime as dt, json, sys, time, warnings
warnings.filterwarnings("ignore")
from mlops_pipeline.config import Settings
from mlops_pipeline.training.job import TrainingRequest, train_and_register
import mlflow, sklearn, shap  # imports are not the task's work
settings = Settings(home=sys.argv[1], usecase=sys.argv[4])
from bench.common import peak_rss_bytes, rss_bytes
baseline = rss_bytes()
started = time.perf_counter()
request = TrainingRequest(dt.date.fromisoformat(sys.argv[2]), int(sys.argv[3]), reason="bench")
primary = settings.spec.primary_metric
outcome = train_and_register(settings, request)
total = time.perf_counter() - started
peak = peak_rss_bytes()
print(json.dumps({"total": total, "timings": outcome.timings, "peak_rss": peak,
                  "peak_over_baseline": peak - baseline, "primary_metric": primary,
                  "primary": outcome.metrics[primary]}))
"""


def run() -> dict:
    from mlops_pipeline.features.store import register_definitions

    root = Path(tempfile.mkdtemp(prefix="bench-training-"))
    settings = build_lake(root, entities=ENTITIES, days=DAYS)
    register_definitions(settings)
    window_end = D0 + dt.timedelta(days=DAYS - 1)
    runs = [
        run_python(
            _CHILD, str(settings.home), window_end.isoformat(), str(DAYS), settings.usecase_name
        )
        for _ in range(REPEATS)
    ]
    steps = list(runs[0]["timings"])
    results = {
        "rows": DAYS * ENTITIES,
        "total_s": round(median([r["total"] for r in runs]), 2),
        "steps_s": {s: round(median([r["timings"][s] for r in runs]), 2) for s in steps},
        "peak_rss_mib": round(median([r["peak_rss"] for r in runs]) / 2**20),
        "peak_over_baseline_mib": round(median([r["peak_over_baseline"] for r in runs]) / 2**20),
        "primary_metric": runs[0]["primary_metric"],
        "test_primary": round(runs[0]["primary"], 4),
    }
    shutil.rmtree(root)
    save("training", results)
    return results


def report(results: dict) -> str:
    return "\n".join(
        [
            f"Training task, {DAYS} days x {ENTITIES:,} entities ({results['rows']:,} rows), "
            f"median of {REPEATS} fresh processes (goal: whole task < 45 s, SHAP < 10 s)",
            "| step | seconds |",
            "|---|---|",
            *[f"| {step} | {value} |" for step, value in results["steps_s"].items()],
            f"| **whole task** | **{results['total_s']}** |",
            f"Peak RSS {results['peak_rss_mib']} MiB (+{results['peak_over_baseline_mib']} MiB "
            f"over the process before training); test {results['primary_metric']} "
            f"{results['test_primary']}.",
        ]
    )
