"""``python -m mlops_pipeline.platform.demo`` (``make demo``): run the scenarios for every
declared use case, print what happened, exit 1 when an outcome is not its scenario's."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
import warnings

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.platform.demo.lifecycle import (
    Lifecycle,
    demo_scenarios,
    run_lifecycles,
    unexpected,
)
from mlops_pipeline.platform.demo.report import show_live_predictions, table, where_things_are

DEMO_START = dt.date(2025, 6, 2)
DEMO_DAYS = 12
# From this partition on, the generators shift the features (covariate drift).
DRIFT_FROM = 8


def run_demo(settings: Settings, usecases: list[str] | None = None) -> dict[str, Lifecycle]:
    """Run the demo's scenarios for ``usecases`` (every declared one by default) and print
    the tables, the state's whereabouts and live predictions."""
    from mlops_pipeline.usecases.loader import declared_usecases

    usecases = usecases or declared_usecases(settings.usecases_dir)
    started = time.perf_counter()
    lifecycles = run_lifecycles(
        settings,
        usecases,
        DEMO_START,
        demo_scenarios(DEMO_DAYS, DRIFT_FROM),
        settings.rows_per_day,
    )
    for name, lifecycle in lifecycles.items():
        spec = settings.for_usecase(name).spec
        print(f"\n== {name}: {spec.task.value}, model {spec.model_name} ==")
        print(table(lifecycle.rows))
    print()
    for name in usecases:
        where_things_are(settings.for_usecase(name))
    print("State summary:        .venv/bin/mlops-pipeline status --usecase NAME")
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
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    lifecycles = run_demo(get_settings())
    wrong = {name: unexpected(lc.rows) for name, lc in lifecycles.items()}
    wrong = {name: rows for name, rows in wrong.items() if rows}
    if wrong:
        print(f"\nUnexpected outcomes: {wrong}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
