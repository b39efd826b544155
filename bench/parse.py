"""DAG parse cost, measured as Airflow's DAG processor parses a file.

The DAG processor manager (``airflow dag-processor``) imports Airflow and, before it forks the
process that parses a file, the ``airflow.*`` modules the file imports at its top level
(``[dag_processor] parsing_pre_import_modules``); it has called ``gc.freeze()``, so a parse
never pays for garbage collection over Airflow's own objects, and the forked process imports
the task runner before it reads the file. Each measurement here is a fresh interpreter doing
one of two preparations, then ``runpy.run_path`` of one file or more, each timed with
``time.process_time()`` (CPU time of the process: on a shared machine wall time varies far
more). Interpreter start-up and the preparation are outside every figure.

For each use case's DAG file:

- as the DAG processor parses it: the manager's modules, the file's pre-imports and the task
  runner imported first, as above (``orchestration.dag_file`` says why the file names them);
- over ``import airflow.sdk`` (and ``gc.freeze()``) alone, the file alone: Airflow's modules
  then all count as the file's;
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
# Prints the CPU seconds of start-up and the preparation, then of each file's parse.
CHILD = """
import gc, json, runpy, sys, time
import airflow.sdk
as_dag_processor = sys.argv[1] == "processor"
if as_dag_processor:
    import importlib
    import airflow.cli.commands.dag_processor_command
    from airflow.utils.file import iter_airflow_imports
    for path in sys.argv[2:]:
        for module in iter_airflow_imports(path):
            importlib.import_module(module)
gc.freeze()
if as_dag_processor:
    import airflow.sdk.execution_time.task_runner
costs = [time.process_time()]
for path in sys.argv[2:]:
    started = time.process_time()
    runpy.run_path(path)
    costs.append(time.process_time() - started)
print(json.dumps(costs))
"""

# As a deployed DAG processor parses: with bytecode caches (this sandbox sets
# PYTHONDONTWRITEBYTECODE, which would charge every parse for compiling Airflow).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _parse_costs(preparation: str, *paths: Path) -> list[float]:
    """CPU seconds of start-up and ``preparation`` ("processor" or "sdk"), then of parsing each
    of ``paths`` in turn, in one fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, preparation, *map(str, paths)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        env=CHILD_ENV,
    )
    # Airflow logs its warnings to stdout: the figures are the last line.
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cases(files: list[Path]) -> dict[str, tuple[str, Path, ...]]:
    cases: dict[str, tuple[str, Path, ...]] = {
        f"{path.name} processor": ("processor", path) for path in files
    }
    cases |= {path.name: ("sdk", path) for path in files}
    cases |= {f"{path.name} after minimal": ("sdk", MINIMAL_DAG, path) for path in files}
    if len(files) > 1:
        # Each file after the one before it (the first after the last).
        cases |= {
            f"{path.name} second": ("sdk", files[i - 1], path) for i, path in enumerate(files)
        }
    return cases


def run() -> dict:
    files = sorted((REPO / "dags").glob("*.py"))
    cases = _cases(files)
    for case in cases.values():
        _parse_costs(*case)  # warm the file cache and the bytecode
    samples: dict[str, list[list[float]]] = {name: [] for name in cases}
    for round_number in range(ROUNDS):
        print(f"parse: round {round_number + 1} of {ROUNDS}", flush=True)
        for name, case in cases.items():
            samples[name].append(_parse_costs(*case))

    def ms(values: list[float]) -> float:
        return round(median(values) * 1000, 1)

    results: dict = {"rounds": ROUNDS, "files": {}}
    for path in files:
        alone, after_minimal = samples[path.name], samples[f"{path.name} after minimal"]
        second = samples.get(f"{path.name} second")
        results["files"][path.name] = {
            "as_dag_processor_cpu_ms": ms([c[1] for c in samples[f"{path.name} processor"]]),
            "over_import_cpu_ms": ms([costs[1] for costs in alone]),
            "minimal_dag_cpu_ms": ms([costs[1] for costs in after_minimal]),
            "over_minimal_dag_cpu_ms": ms([costs[2] for costs in after_minimal]),
            "as_second_usecase_cpu_ms": ms([costs[2] for costs in second]) if second else None,
        }
    results["import_airflow_sdk_cpu_ms"] = ms(
        [c[0] for name, runs in samples.items() if not name.endswith(" processor") for c in runs]
    )
    save("parse", results)
    return results


def report(results: dict) -> str:
    lines = [
        "DAG parse cost: CPU time of `runpy.run_path` of the file in a fresh interpreter, "
        "prepared as Airflow's DAG processor prepares a parse (its manager's modules and the "
        "file's `airflow.*` imports imported, `gc.freeze()`, the task runner imported) or after "
        "a bare `import airflow.sdk` and `gc.freeze()` (median of "
        f"{results['rounds']} interleaved rounds; start-up and `import airflow.sdk` themselves: "
        f"{results['import_airflow_sdk_cpu_ms']:.0f} ms). Goal: < 50 ms per use case over "
        "`import airflow.sdk`.",
        "| use case (DAG file) | as the DAG processor parses it | over a bare `import "
        "airflow.sdk` | minimal TaskFlow DAG (Airflow's own) | ours over the minimal DAG | as a "
        "second use case in the process |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results["files"].items():
        second = row["as_second_usecase_cpu_ms"]
        lines.append(
            f"| {name} | {row['as_dag_processor_cpu_ms']:.0f} ms "
            f"| {row['over_import_cpu_ms']:.0f} ms | {row['minimal_dag_cpu_ms']:.0f} ms "
            f"| {row['over_minimal_dag_cpu_ms']:.0f} ms | "
            + (f"{second:.0f} ms |" if second is not None else "(one use case) |")
        )
    return "\n".join(lines)
