"""DAG parse cost, measured as Airflow's DAG processor parses a file.

The DAG processor manager imports Airflow, calls ``gc.freeze()`` and forks one process per
parse; a parse therefore never pays for garbage collection over Airflow's own objects. Each
measurement here is a fresh interpreter doing the same: ``import airflow.sdk``, ``gc.freeze()``,
then ``runpy.run_path`` of one file or more, each timed with ``time.process_time()`` (CPU time
of the process: on a shared machine wall time varies far more). Interpreter start-up and
``import airflow.sdk`` are outside every figure.

For each use case's DAG file:

- over ``import airflow.sdk``: the file alone;
- the minimal TaskFlow DAG (``bench/minimal_taskflow_dag.py``, one task, a cron schedule) alone:
  Airflow's own cost of any DAG file (its DAG and task machinery is imported lazily);
- ours over the minimal DAG: the file parsed right after the minimal DAG in the same process,
  once Airflow's share is paid;
- as a second use case: the file parsed right after another use case's file in the same
  process, once the platform's modules are loaded too: what one more use case costs.

Every round runs each of these once, in turn, so drifts of the machine's load are shared; the
figures are medians over the rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import REPO, median, save

ROUNDS = 11
MINIMAL_DAG = REPO / "bench" / "minimal_taskflow_dag.py"
# Prints the CPU seconds of start-up and `import airflow.sdk`, then of each file's parse.
CHILD = """
import gc, json, runpy, sys, time
import airflow.sdk
gc.freeze()
costs = [time.process_time()]
for path in sys.argv[1:]:
    started = time.process_time()
    runpy.run_path(path)
    costs.append(time.process_time() - started)
print(json.dumps(costs))
"""

# As a deployed DAG processor parses: with bytecode caches (this sandbox sets
# PYTHONDONTWRITEBYTECODE, which would charge every parse for compiling Airflow).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _parse_costs(*paths: Path) -> list[float]:
    """CPU seconds of ``import airflow.sdk`` (with start-up), then of parsing each of ``paths``
    in turn, in one fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, paths)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        env=CHILD_ENV,
    )
    # Airflow logs its warnings to stdout: the figures are the last line.
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cases(files: list[Path]) -> dict[str, tuple[Path, ...]]:
    cases = {path.name: (path,) for path in files}
    cases |= {f"{path.name} after minimal": (MINIMAL_DAG, path) for path in files}
    if len(files) > 1:
        # Each file after the one before it (the first after the last).
        cases |= {f"{path.name} second": (files[i - 1], path) for i, path in enumerate(files)}
    return cases


def run() -> dict:
    files = sorted((REPO / "dags").glob("*.py"))
    cases = _cases(files)
    for paths in cases.values():
        _parse_costs(*paths)  # warm the file cache and the bytecode
    samples: dict[str, list[list[float]]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, paths in cases.items():
            samples[name].append(_parse_costs(*paths))

    def ms(values: list[float]) -> float:
        return round(median(values) * 1000, 1)

    results: dict = {"rounds": ROUNDS, "files": {}}
    for path in files:
        alone, after_minimal = samples[path.name], samples[f"{path.name} after minimal"]
        second = samples.get(f"{path.name} second")
        results["files"][path.name] = {
            "over_import_cpu_ms": ms([costs[1] for costs in alone]),
            "minimal_dag_cpu_ms": ms([costs[1] for costs in after_minimal]),
            "over_minimal_dag_cpu_ms": ms([costs[2] for costs in after_minimal]),
            "as_second_usecase_cpu_ms": ms([costs[2] for costs in second]) if second else None,
        }
    results["import_airflow_sdk_cpu_ms"] = ms([c[0] for runs in samples.values() for c in runs])
    save("parse", results)
    return results


def report(results: dict) -> str:
    lines = [
        "DAG parse cost as Airflow's DAG processor parses a file: CPU time of `runpy.run_path` "
        "after `import airflow.sdk` and `gc.freeze()`, in a fresh interpreter (median of "
        f"{results['rounds']} interleaved rounds; start-up and `import airflow.sdk` themselves: "
        f"{results['import_airflow_sdk_cpu_ms']:.0f} ms). Goal: < 50 ms per use case over "
        "`import airflow.sdk`.",
        "| use case (DAG file) | over `import airflow.sdk` | minimal TaskFlow DAG (Airflow's "
        "own) | ours over the minimal DAG | as a second use case in the process |",
        "|---|---|---|---|---|",
    ]
    for name, row in results["files"].items():
        second = row["as_second_usecase_cpu_ms"]
        lines.append(
            f"| {name} | {row['over_import_cpu_ms']:.0f} ms | {row['minimal_dag_cpu_ms']:.0f} ms "
            f"| {row['over_minimal_dag_cpu_ms']:.0f} ms | "
            + (f"{second:.0f} ms |" if second is not None else "(one use case) |")
        )
    return "\n".join(lines)
