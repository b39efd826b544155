"""A use case's lifecycle through its DAGs, one partition after another: what each partition's
scenario led to (validation, features, training, deployment, the night's drift check), one row
per partition."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.usecases.vocabulary import partition_key

# One partition loses a few rows to quarantine and still passes; one is broken and fails whole.
DEMO_SCENARIOS = {2: "out_of_range", 4: "schema_break"}
# Lands the partition holding a day or an hour (settings, partition, scenario): the demo
# generates it.
Lander = Callable[[Settings, dt.date, str], None]
# Where the DAG runs' own output goes (a context each partition's runs happen in), and what to
# do with each partition's row once its runs are done.
TaskOutput = Callable[[], AbstractContextManager[Any]]
RowDone = Callable[[str, dict[str, Any]], None]


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
    task_output: TaskOutput = contextlib.nullcontext,
    row_done: RowDone | None = None,
) -> dict[str, Lifecycle]:
    """Run the scenarios for every one of ``usecases``, their partitions interleaved (partition 0 of
    each, then partition 1 of each, ...) through the same embedded Airflow. Airflow's start-up
    and each partition's DAG runs happen inside ``task_output()``; ``row_done`` is called with
    each partition's row after."""
    from mlops_pipeline.orchestration import runner as airflow_runner

    airflow_runner.configure_embedded_airflow(settings)
    with task_output():
        airflow_runner.migrate_metadata_db()
    land = land or _generate(rows_per_day)
    lifecycles = {name: Lifecycle(usecase=name) for name in usecases}
    for offset, scenario in sorted(scenarios.items()):
        for name in usecases:
            lifecycle = lifecycles[name]
            began = time.perf_counter()
            with task_output():
                row = _run_partition(
                    settings.for_usecase(name), offset, start, scenario, land, lifecycle
                )
            row["seconds"] = round(time.perf_counter() - began, 1)
            lifecycle.wall_seconds += time.perf_counter() - began
            lifecycle.rows.append(row)
            if row_done is not None:
                row_done(name, row)
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
    row: dict[str, Any] = {"date": partition_key(day), "scenario": scenario}
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
        "champion": champion_label(settings),
        "model": ", ".join(m for m in models if m) or "-",
    }
    if str(ingested.state) != "success":
        row["error"] = report.get("message") or f"{dag_id(name, 'ingest')} {ingested.state}"
    return row


def _challenger_version(usecase: str, dag_run: Any) -> str:
    from mlops_pipeline.orchestration import runner as airflow_runner
    from mlops_pipeline.orchestration.assets import usecase_assets

    events = airflow_runner.asset_event_extras(usecase_assets(usecase).challenger.name, dag_run)
    return str(events[-1]["version"]) if events else "?"


def _ingestion_report(settings: Settings, day: dt.date) -> dict[str, Any]:
    from mlops_pipeline.data.ingestion_report import report_path

    path = report_path(settings, day)
    return json.loads(path.read_text()) if path.exists() else {}


def _night(settings: Settings, day: dt.date, dag_run: Any) -> tuple[str, str]:
    from mlops_pipeline.monitoring.records import CHECKED
    from mlops_pipeline.monitoring.records import night_record_json as read_record

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


def champion_label(settings: Settings) -> str:
    """The champion as the table shows it (``v<version>``), ``-`` while there is none."""
    from mlops_pipeline.deployment.registry import CHAMPION, client, version_for_alias

    version = version_for_alias(client(settings), settings.spec.model_name, CHAMPION)
    return f"v{version.version}" if version else "-"


def unexpected(rows: list[dict]) -> list[dict]:
    """Rows whose outcome is not what their scenario should give (the broken one must fail)."""
    return [
        r
        for r in rows
        if (r["dag_run"] == "success") != (r["scenario"] != "schema_break")
        or "FAILED" in f"{r['model']} {r['retrain']}"
    ]
