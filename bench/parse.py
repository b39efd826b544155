"""DAG parse cost: a fresh interpreter parsing one DAG file, minus one importing airflow.sdk."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import REPO, median, save

REPEATS = 7


def _seconds(code: str, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True)
    return time.perf_counter() - started


def run() -> dict:
    baseline_code = "import airflow.sdk"
    parse_code = "import runpy, sys; runpy.run_path(sys.argv[1])"
    _seconds(baseline_code)  # warm the file cache and bytecode
    baseline = median([_seconds(baseline_code) for _ in range(REPEATS)])
    results = {"baseline_import_airflow_sdk_s": round(baseline, 3), "files": {}}
    for path in sorted((REPO / "dags").glob("*.py")):
        _seconds(parse_code, str(path))
        parse = median([_seconds(parse_code, str(path)) for _ in range(REPEATS)])
        results["files"][path.name] = {
            "parse_s": round(parse, 3),
            "over_baseline_ms": round((parse - baseline) * 1000, 1),
        }
    save("parse", results)
    return results


def report(results: dict) -> str:
    lines = [
        f"DAG parse time (median of {REPEATS}, fresh interpreter; baseline `import airflow.sdk` "
        f"= {results['baseline_import_airflow_sdk_s'] * 1000:.0f} ms; goal < 50 ms over it)",
        "| DAG file | parse | over baseline |",
        "|---|---|---|",
    ]
    for name, row in results["files"].items():
        lines.append(
            f"| {name} | {row['parse_s'] * 1000:.0f} ms | {row['over_baseline_ms']:.0f} ms |"
        )
    return "\n".join(lines)
