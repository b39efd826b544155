"""``make demo``: every declared use case's lifecycle, side by side, through Airflow.

Twelve generated partitions per use case, the same scenarios for each: clean ones, one that loses a
few rows to quarantine, one whose schema breaks (it fails whole), and covariate drift from
partway through. Each partition: ingest -> materialize -> train when due -> gated deploy, then
that night's drift check; a night that requests a retrain trains and deploys again. Each step
runs the consumer DAG on exactly the asset events its producer emitted, as the scheduler would.

The use cases' partitions are interleaved through one embedded Airflow, so the DAG parsing and
the start-up costs are paid once. Then one table per use case, and live predictions from each
use case's own model server, by entity id (the online store) and inline (raw features).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_pipeline.config import Settings, get_settings

DEMO_START = dt.date(2025, 6, 2)
DEMO_DAYS = 12
# One partition loses a few rows to quarantine and still passes; one is broken and fails whole.
DEMO_SCENARIOS = {2: "out_of_range", 4: "schema_break"}
# From this partition on, the generators shift the features (covariate drift).
DRIFT_FROM = 8
# Lands the partition holding a day (settings, day, scenario): the demo generates it.
Lander = Callable[[Settings, dt.date, str], None]


def demo_scenarios(days: int, drift_from: int) -> dict[int, str]:
    return {
        offset: DEMO_SCENARIOS.get(offset, "covariate_drift" if offset >= drift_from else "clean")
        for offset in range(days)
    }


@dataclass
class Lifecycle:
    """What the run did for one use case, for the table and for the tests."""

    usecase: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    dag_runs: list[Any] = field(default_factory=list)
    wall_seconds: float = 0.0
    task_seconds: float = 0.0

    @property
    def overhead_seconds(self) -> float:
        return self.wall_seconds - self.task_seconds


def partition_at(settings: Settings, start: dt.date, offset: int) -> dt.date:
    """The ``offset``-th partition from ``start``'s, in the use case's cadence."""
    cadence = settings.spec.cadence
    return cadence.partition_of(start) + offset * cadence.length


def run_lifecycle(
    settings: Settings,
    start: dt.date,
    scenarios: dict[int, str],
    rows_per_day: int,
    land: Lander | None = None,
) -> Lifecycle:
    """Run every partition of ``scenarios`` (offset from ``start`` -> scenario) of the settings'
    use case through its DAGs."""
    name = settings.usecase_name
    return run_lifecycles(settings, [name], start, scenarios, rows_per_day, land)[name]


def run_lifecycles(
    settings: Settings,
    usecases: list[str],
    start: dt.date,
    scenarios: dict[int, str],
    rows_per_day: int,
    land: Lander | None = None,
) -> dict[str, Lifecycle]:
    """Run the scenarios for every one of ``usecases``, their partitions interleaved (partition 0 of
    each, then partition 1 of each, ...) through the same embedded Airflow."""
    from mlops_pipeline.orchestration import runner as airflow_runner

    airflow_runner.configure_embedded_airflow(settings)
    airflow_runner.migrate_metadata_db()
    land = land or _generate(rows_per_day)
    lifecycles = {name: Lifecycle(usecase=name) for name in usecases}
    for offset, scenario in sorted(scenarios.items()):
        for name in usecases:
            lifecycle = lifecycles[name]
            began = time.perf_counter()
            row = _run_partition(
                settings.for_usecase(name), offset, start, scenario, land, lifecycle
            )
            row["seconds"] = round(time.perf_counter() - began, 1)
            lifecycle.wall_seconds += time.perf_counter() - began
            lifecycle.rows.append(row)
    for lifecycle in lifecycles.values():
        lifecycle.task_seconds = airflow_runner.task_seconds(lifecycle.dag_runs)
    return lifecycles


def _generate(rows: int) -> Lander:
    def generate(settings: Settings, day: dt.date, scenario: str) -> None:
        from mlops_pipeline.data.datagen import generate_day

        generate_day(settings, day, rows=rows, scenario=scenario)

    return generate


def _run_partition(
    settings: Settings,
    offset: int,
    start: dt.date,
    scenario: str,
    land: Lander,
    lifecycle: Lifecycle,
) -> dict[str, Any]:
    """One partition of one use case: ingest, then what its events trigger, then the night."""
    from mlops_pipeline.orchestration import runner as airflow_runner
    from mlops_pipeline.orchestration.factory import dag_id

    name = settings.usecase_name
    day = partition_at(settings, start, offset)
    land(settings, day, scenario)

    def recorded(dag_run: Any) -> Any:
        if dag_run is not None:
            lifecycle.dag_runs.append(dag_run)
        return dag_run

    def consumer(stage: str, producer: Any) -> Any:
        return recorded(airflow_runner.run_on_events(dag_id(name, stage), [producer]))

    def train_and_deploy(trained: Any) -> str:
        """What a training run (if its events triggered one) and its challenger led to."""
        if trained is None:
            return ""
        if str(trained.state) != "success":
            return "training FAILED"
        if airflow_runner.task_states(trained).get("train") != "success":
            return ""  # not due: the training check short-circuited
        deployed = consumer("deploy", trained)
        version = _challenger_version(name, trained)
        if deployed is None:
            return f"v{version} not deployed"
        if str(deployed.state) != "success":
            return f"v{version} deploy FAILED"
        promoted = airflow_runner.task_states(deployed).get("promote") == "success"
        return f"v{version} {'promoted' if promoted else 'rejected'}"

    ingested = recorded(airflow_runner.run_partition(dag_id(name, "ingest"), day))
    row: dict[str, Any] = {"date": day.isoformat(), "scenario": scenario}
    models, drift_share, retrain = [], "-", "-"
    if str(ingested.state) == "success":
        # What the validated data triggers: materialize the partition.
        materialized = consumer("materialize", ingested)
        if materialized is None or str(materialized.state) != "success":
            models.append("features FAILED")
        else:
            # What the features being online trigger: training when due, then its deploy.
            models.append(train_and_deploy(consumer("train", materialized)))
        # The night after the partition: the drift check; a retrain request trains again.
        # Dated like the scheduled run after the partition: it checks the partition it follows.
        checked = recorded(airflow_runner.run_partition(dag_id(name, "monitor_drift"), day))
        drift_share, retrain = _night(settings, day, checked)
        models.append(train_and_deploy(consumer("train", checked)))
    report = _ingestion_report(settings, day)
    row |= {
        "dag_run": str(ingested.state),
        "rows": report.get("rows_valid", 0),
        "quarantined": report.get("rows_quarantined", 0),
        "drift_share": drift_share,
        "retrain": retrain,
        "champion": _champion(settings),
        "model": ", ".join(m for m in models if m) or "-",
    }
    return row


def _challenger_version(usecase: str, dag_run: Any) -> str:
    from mlops_pipeline.orchestration import runner as airflow_runner
    from mlops_pipeline.orchestration.assets import usecase_assets

    events = airflow_runner.asset_event_extras(usecase_assets(usecase).challenger.name, dag_run)
    return str(events[-1]["version"]) if events else "?"


def _ingestion_report(settings: Settings, day: dt.date) -> dict[str, Any]:
    from mlops_pipeline.data.ingestion import report_path

    path = report_path(settings, day)
    return json.loads(path.read_text()) if path.exists() else {}


def _night(settings: Settings, day: dt.date, dag_run: Any) -> tuple[str, str]:
    from mlops_pipeline.monitoring.nightly import CHECKED, read_record

    record = read_record(settings, day)
    if str(dag_run.state) != "success" or record is None:
        return "FAILED", "FAILED"
    if record["status"] != CHECKED:
        return "-", record["status"]
    decision = record["decision"]
    share = f"{record['drift']['drift_share']:.2f}"
    if decision["retrain"]:
        return share, "RETRAIN"
    why = decision["reasons"][0] if decision["reasons"] else ""
    if why.startswith("cooldown"):
        return share, "no (cooldown)"
    if why.startswith("drifted on"):
        return (
            share,
            f"no ({len(decision['nights_flagged'])} of {record['policy']['nights_window']})",
        )
    return share, "no"


def _champion(settings: Settings) -> str:
    from mlops_pipeline.deployment.registry import CHAMPION, client, version_for_alias

    version = version_for_alias(client(settings), settings.spec.model_name, CHAMPION)
    return f"v{version.version}" if version else "-"


HEADERS = [
    "date",
    "scenario",
    "dag_run",
    "rows",
    "quarantined",
    "drift_share",
    "retrain",
    "champion",
    "model",
    "seconds",
]


def table(rows: list[dict]) -> str:
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in HEADERS}
    out = ["  ".join(h.ljust(widths[h]) for h in HEADERS)]
    out.append("  ".join("-" * widths[h] for h in HEADERS))
    out += ["  ".join(str(r[h]).ljust(widths[h]) for h in HEADERS) for r in rows]
    return "\n".join(out)


def run_demo(settings: Settings, usecases: list[str] | None = None) -> dict[str, Lifecycle]:
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
        _where_things_are(settings.for_usecase(name))
    print("State summary:        .venv/bin/mlops-pipeline status --usecase NAME")
    for name in usecases:
        _show_live_predictions(settings.for_usecase(name))
    wall = time.perf_counter() - started
    runs = sum(len(lc.dag_runs) for lc in lifecycles.values())
    tasks = sum(lc.task_seconds for lc in lifecycles.values())
    print(
        f"\nWall time {wall:.0f} s over {runs} DAG runs of {len(usecases)} use cases; task run "
        f"time {tasks:.0f} s; orchestration and serving overhead {wall - tasks:.0f} s "
        f"({(wall - tasks) / wall:.0%} of the wall time)."
    )
    return lifecycles


def _where_things_are(settings: Settings) -> None:
    from mlops_pipeline.data import storage
    from mlops_pipeline.features.materialization import materialized_ranges
    from mlops_pipeline.monitoring.nightly import prometheus_file

    spec = settings.spec
    print(f"-- {spec.name}")
    lake_days = storage.partition_days(settings.lake_dir)
    print(f"Validated partitions: {len(lake_days)} under {settings.lake_dir}")
    print(f"Validation results:   {settings.validations_dir}")
    print(f"Quarantine:           {settings.quarantine_dir}")
    print(f"Feature store:        {settings.feast_dir} (project {settings.feast_project})")
    for view, span in materialized_ranges(settings).items():
        print(f"  {view:<20} materialized {span['from']} .. {span['to']}")
    drift_dir = settings.drift_reports_dir
    print(f"Drift reports:        {drift_dir}/night=YYYY-MM-DD/report.html (+ summary.json)")
    print(f"Drift metrics:        {prometheus_file(settings)} (Prometheus textfile)")
    print(f"Decision records:     {settings.decisions_dir}")
    print(
        f"MLflow:               model {spec.model_name}, experiments "
        f"{spec.training_experiment}, {spec.monitoring_experiment}"
    )


def _sample_rows(settings: Settings, count: int) -> list[dict[str, Any]]:
    """A few rows of the latest validated partition, JSON-ready."""
    import pandas as pd

    from mlops_pipeline.data import storage

    days = storage.partition_days(settings.lake_dir)
    if not days:
        return []
    frame = pd.read_parquet(storage.partition_dir(settings.lake_dir, days[-1])).head(count)
    rows = json.loads(frame.to_json(orient="records", date_format="iso"))
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]


def _show_live_predictions(settings: Settings) -> None:
    """Start the use case's model server, ask it by entity id and inline, stop it."""
    import httpx

    from mlops_pipeline.serving.process import running_server

    spec = settings.spec
    key, score, decision = spec.entity.key, spec.serving.score_field, spec.serving.decision_field
    if _champion(settings) == "-":
        print(f"\n{spec.name}: no champion (the gates promoted no model): nothing to serve.")
        return
    rows = _sample_rows(settings, 3)
    ids = [row[key] for row in rows] + [10**9]
    inline = {c: rows[0][c] for c in (key, *spec.feature_columns)} if rows else {}
    try:
        with running_server(settings) as base:
            by_id = httpx.post(f"{base}/predict", json={"entities": {key: ids}}, timeout=30)
            by_row = httpx.post(f"{base}/predict", json={"instances": [inline]}, timeout=30)
    except (RuntimeError, TimeoutError) as exc:
        print(f"\n{spec.name}: the model server did not start: {exc}")
        return
    for label, answer in (("by entity id", by_id), ("inline", by_row)):
        if answer.status_code != 200:
            print(f"\n{spec.name} {label}: HTTP {answer.status_code}: {answer.text[:300]}")
            continue
        body = answer.json()
        threshold = body.get("threshold")
        print(
            f"\nLive predictions of {spec.name} {label} from {base} (model "
            f"{body['model_name']} v{body['model_version']}"
            + (f", threshold {threshold:.3f}" if threshold is not None else "")
            + "):"
        )
        for prediction in body["predictions"]:
            shown = f"{score}={prediction[score]:.3f}"
            if decision:
                shown += f" {decision}={prediction[decision]}"
            print(f"  {key} {prediction.get(key)!s:>10}: {shown}")
        for unknown in body.get("unknown", []):
            print(f"  {key} {unknown[key]!s:>10}: {unknown['error']}")


def unexpected(rows: list[dict]) -> list[dict]:
    """Rows whose outcome is not what their scenario should give (the broken one must fail)."""
    return [
        r
        for r in rows
        if (r["dag_run"] == "success") != (r["scenario"] != "schema_break")
        or "FAILED" in f"{r['model']} {r['retrain']}"
    ]


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
