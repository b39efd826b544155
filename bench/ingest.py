"""Ingestion of a 1,000,000-row day: read, validate, split, write; Data Docs timed apart.

Each repetition runs in a fresh interpreter so its peak RSS is its own. Peak memory is the
process's maximum RSS minus its RSS just before reading, against the frame's size in memory.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from bench.common import median, run_python, save

ROWS = 1_000_000
REPEATS = 3
FORMATS = ("csv", "parquet")
DAY = dt.date(2025, 6, 2)
# The use case whose dataset is measured (the README's figures are churn's 16 columns).
USECASE = "churn"

_CHILD = r"""
import datetime as dt, json, sys, warnings
warnings.filterwarnings("ignore")
from mlops_pipeline.config import Settings
from mlops_pipeline.data import ingestion
from mlops_pipeline.data.validation import GxProject

settings = Settings(home=sys.argv[1], usecase=sys.argv[3])
GxProject(settings)  # import Great Expectations and open the project before measuring

from bench.common import peak_rss_bytes, rss_bytes

frame_bytes = {}
real_conform = ingestion.conform_types
def conform_and_measure(spec, table):
    frame = real_conform(spec, table)
    frame_bytes["read"] = int(frame.memory_usage(deep=True).sum())
    return frame
ingestion.conform_types = conform_and_measure

baseline = rss_bytes()
report = ingestion.ingest_day(settings, dt.date.fromisoformat(sys.argv[2]))
peak = peak_rss_bytes()
print(json.dumps({"timings": report.timings, "rows": report.rows_landed,
                  "frame_bytes": frame_bytes["read"], "peak_over_baseline": peak - baseline}))
"""


def _measure(file_format: str) -> dict:
    from mlops_pipeline.config import Settings
    from mlops_pipeline.data.datagen import generate_day

    home = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{file_format}-"))
    settings = Settings(home=home, usecase=USECASE)
    generate_day(settings, DAY, rows=ROWS, scenario="out_of_range", file_format=file_format)
    runs = [run_python(_CHILD, str(home), DAY.isoformat(), USECASE) for _ in range(REPEATS)]
    steps = ["hash", "read", "gx_context", "validate", "split_write", "data_docs"]
    timing = {step: median([r["timings"][step] for r in runs]) for step in steps}
    end_to_end = median([sum(r["timings"][s] for s in steps if s != "data_docs") for r in runs])
    frame_bytes = runs[0]["frame_bytes"]
    peak = median([r["peak_over_baseline"] for r in runs])
    shutil.rmtree(home)
    return {
        "steps_s": {k: round(v, 3) for k, v in timing.items()},
        "end_to_end_s": round(end_to_end, 3),
        "rows_per_s": round(ROWS / end_to_end),
        "frame_mib": round(frame_bytes / 2**20, 1),
        "peak_mib_over_baseline": round(peak / 2**20, 1),
        "peak_over_frame": round(peak / frame_bytes, 2),
    }


def run() -> dict:
    results = {"rows": ROWS, "repeats": REPEATS, "formats": {f: _measure(f) for f in FORMATS}}
    save("ingest", results)
    return results


def report(results: dict) -> str:
    formats = results["formats"]
    steps = next(iter(formats.values()))["steps_s"]
    head = "| step | " + " | ".join(f"{f} landing" for f in formats) + " |"
    lines = [
        f"Ingestion of {results['rows']:,} rows (median of {results['repeats']} fresh "
        "processes; goal >= 500,000 rows/s, peak < 2.5x the frame)",
        head,
        "|---|" + "---|" * len(formats),
    ]
    for step in steps:
        lines.append(
            f"| {step} s | "
            + " | ".join(f"{r['steps_s'][step]:.3f}" for r in formats.values())
            + " |"
        )
    rows = [
        ("end to end s (without Data Docs)", "end_to_end_s", "{:.3f}"),
        ("rows/s", "rows_per_s", "{:,}"),
        ("frame in memory MiB", "frame_mib", "{}"),
        ("peak RSS over baseline MiB", "peak_mib_over_baseline", "{}"),
        ("peak / frame", "peak_over_frame", "{}x"),
    ]
    for label, key, fmt in rows:
        lines.append(
            f"| {label} | " + " | ".join(fmt.format(r[key]) for r in formats.values()) + " |"
        )
    return "\n".join(lines)
