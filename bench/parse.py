"""DAG parse cost: a fresh interpreter parsing one use case's DAG file (its six DAGs, built by
the factory from the declaration), minus one importing airflow.sdk.

Runs are interleaved in pairs (baseline, DAG file) so machine load drifts cancel out, and each
child's CPU time (user + system) is measured as well as its wall time: on a shared 2-core
machine wall time varies by a few hundred ms between identical runs, CPU time much less.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

from bench.common import REPO, median, save

PAIRS = 15
BASELINE = "import airflow.sdk"
PARSE = "import runpy, sys; runpy.run_path(sys.argv[1])"


# As a deployed scheduler parses: with bytecode caches (this sandbox sets
# PYTHONDONTWRITEBYTECODE, which would charge every parse for compiling Airflow).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _child(code: str, *args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh interpreter running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, env=CHILD_ENV
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run() -> dict:
    _child(BASELINE)  # warm the file cache and bytecode
    results: dict = {"pairs": PAIRS, "files": {}}
    baseline_cpu_all: list[float] = []
    for path in sorted((REPO / "dags").glob("*.py")):
        _child(PARSE, str(path))
        wall_diffs, cpu_diffs, baseline_cpu = [], [], []
        for _ in range(PAIRS):
            base_wall, base_cpu = _child(BASELINE)
            wall, cpu = _child(PARSE, str(path))
            wall_diffs.append(wall - base_wall)
            cpu_diffs.append(cpu - base_cpu)
            baseline_cpu.append(base_cpu)
        baseline_cpu_all += baseline_cpu
        results["files"][path.name] = {
            "over_baseline_cpu_ms": round(median(cpu_diffs) * 1000, 1),
            "over_baseline_wall_ms": round(median(wall_diffs) * 1000, 1),
        }
    results["baseline_cpu_s"] = round(median(baseline_cpu_all), 3)
    save("parse", results)
    return results


def report(results: dict) -> str:
    lines = [
        f"DAG parse cost over a bare `import airflow.sdk` (median of {results['pairs']} "
        f"interleaved pairs; baseline CPU {results['baseline_cpu_s'] * 1000:.0f} ms; "
        "goal < 50 ms per use case)",
        "| use case (DAG file) | CPU over baseline | wall over baseline |",
        "|---|---|---|",
    ]
    for name, row in results["files"].items():
        lines.append(
            f"| {name} | {row['over_baseline_cpu_ms']:.0f} ms | "
            f"{row['over_baseline_wall_ms']:.0f} ms |"
        )
    return "\n".join(lines)
