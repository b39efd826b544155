"""``python -m mlops_pipeline.platform.demo`` (``make demo``): run the scenarios for every
declared use case, print what happened, exit 1 when an outcome is not its scenario's."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import time
import traceback
from pathlib import Path

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.platform.demo.lifecycle import (
    Lifecycle,
    demo_scenarios,
    run_lifecycles,
    unexpected,
)
from mlops_pipeline.platform.demo.output import log_path, output_to, progress_line
from mlops_pipeline.platform.demo.report import show_live_predictions, table, where_things_are

DEMO_START = dt.date(2025, 6, 2)
DEMO_DAYS = 12
# From this partition on, the generators shift the features (covariate drift).
DRIFT_FROM = 8


def run_demo(
    settings: Settings,
    usecases: list[str] | None = None,
    scenarios: dict[int, str] | None = None,
) -> dict[str, Lifecycle]:
    """Run the demo's scenarios (offset -> scenario; the demo's twelve by default) for
    ``usecases`` (every declared one by default) and print a progress line per partition, the
    tables, the state's whereabouts and live predictions. The DAG runs' own output goes to
    ``MLOPS_HOME/demo.log``."""
    from mlops_pipeline.usecases.loader import declared_usecases

    usecases = usecases or declared_usecases(settings.usecases_dir)
    scenarios = scenarios or demo_scenarios(DEMO_DAYS, DRIFT_FROM)
    log = log_path(settings.home)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    started = time.perf_counter()
    print(
        f"{len(scenarios)} partitions of {', '.join(usecases)} through Airflow (task logs: {log})",
        flush=True,
    )
    lifecycles = run_lifecycles(
        settings,
        usecases,
        DEMO_START,
        scenarios,
        settings.rows_per_day,
        task_output=lambda: output_to(log),
        row_done=lambda name, row: print(progress_line(name, row), flush=True),
    )
    for name, lifecycle in lifecycles.items():
        spec = settings.for_usecase(name).spec
        print(f"\n== {name}: {spec.task.value}, model {spec.model_name} ==")
        print(table(lifecycle.rows))
    print()
    # What the libraries print while the state is read and the champion served goes to the log
    # too; the demo's own lines go to the terminal.
    with output_to(log) as terminal, contextlib.redirect_stdout(terminal):
        for name in usecases:
            where_things_are(settings.for_usecase(name))
        print("State summary:        .venv/bin/mlops-pipeline status --usecase NAME")
        print(f"Task logs:            {log}")
        for name in usecases:
            show_live_predictions(settings.for_usecase(name))
    wall = time.perf_counter() - started
    runs = sum(len(lc.dag_runs) for lc in lifecycles.values())
    tasks = sum(lc.task_seconds for lc in lifecycles.values())
    print(
        f"\nWall time {wall:.0f} s over {runs} DAG runs of {len(usecases)} use cases; task run "
        f"time {tasks:.0f} s; orchestration and serving overhead {wall - tasks:.0f} s "
        f"({(wall - tasks) / wall:.0%} of the wall time)."
    )
    return lifecycles


def main() -> int:
    # Before scikit-learn loads OpenMP: idle OpenMP threads sleep instead of spinning. On two
    # shared cores a spinning thread steals the core its partner needs.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = get_settings()
    try:
        lifecycles = run_demo(settings)
    except Exception as exc:
        return failed(exc, log_path(settings.home))
    wrong = {name: unexpected(lc.rows) for name, lc in lifecycles.items()}
    wrong = {name: rows for name, rows in wrong.items() if rows}
    if wrong:
        print(f"\nUnexpected outcomes: {wrong}", file=sys.stderr)
        return 1
    return 0


def failed(exc: BaseException, log: Path) -> int:
    """A demo that could not finish: its one-line error on the terminal, the traceback in the
    log beside the DAG runs' output."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        traceback.print_exception(exc, file=out)
    first = (str(exc).strip().splitlines() or [""])[0]
    print(f"demo failed: {type(exc).__name__}: {first} (traceback: {log})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
