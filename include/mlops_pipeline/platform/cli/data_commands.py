"""The commands about declarations, data and state: usecases, new-usecase, check-usecase,
generate, ingest, serve, status."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.platform.cli.output import EXIT_REJECTED, cell, print_json, stage, table


def usecases(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.usecases.check import check_usecase
    from mlops_pipeline.usecases.loader import declared_usecases

    declared = declared_usecases(settings.usecases_dir)
    if not declared and not args.json:
        print(f"No use case under {settings.usecases_dir} (mlops-pipeline new-usecase ...)")
    listed: list[dict[str, Any]] = []
    for name in declared:
        try:
            spec = check_usecase(settings, name)
        except PermanentFailure as exc:
            first = str(exc).splitlines()[-1].strip(" -")
            listed.append({"name": name, "valid": False, "problem": first})
            if not args.json:
                print(f"{name:<24} INVALID: {first} (mlops-pipeline check-usecase {name})")
            continue
        row = {
            "name": name,
            "valid": True,
            "task": spec.task.value,
            "cadence": spec.cadence.value,
            "entity_key": spec.entity.key,
            "label": spec.label,
            "model_name": spec.model_name,
        }
        listed.append(row)
        if not args.json:
            print(
                f"{name:<24} {spec.task.value:<22} {spec.cadence.value:<7} entity "
                f"{spec.entity.key}, label {spec.label}, model {spec.model_name}"
            )
    if args.json:
        print_json(listed)
    return 0


def new_usecase(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.data import storage
    from mlops_pipeline.usecases.scaffold.new_usecase import scaffold_usecase
    from mlops_pipeline.usecases.spec import Cadence, Task

    written = scaffold_usecase(
        settings,
        args.name,
        args.sample,
        entity_key=args.entity,
        timestamp=args.timestamp,
        label=args.label,
        task=Task(args.task) if args.task else None,
        cadence=Cadence(args.cadence),
        dataset=args.dataset,
        dags_dir=args.dags_dir,
    )
    kinds = ", ".join(f"{c} ({k})" for c, k in written.columns.items())
    landing = storage.partition_dir(settings.for_usecase(args.name).landing_dir, dt.date.today())
    key = "YYYY-MM-DDTHH" if args.cadence == Cadence.HOURLY else "YYYY-MM-DD"
    print(f"Wrote {written.declaration} ({written.task.value}): {kinds}")
    print(f"Wrote {written.dag_file} (its DAGs: {args.name}__ingest, __train, ...)")
    for note in written.notes:
        print(f"  review: {note}")
    print(
        "Next:\n"
        f"  edit the description (and the value sets, ranges) in {written.declaration}\n"
        f"  mlops-pipeline check-usecase {args.name}\n"
        f"  land each partition's file under {landing.parent}/date={key}/\n"
        f"  mlops-pipeline ingest --usecase {args.name} --date {key}   (or make airflow)"
    )
    return 0


def check_usecase(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.usecases.check import check_usecase, summary

    print(summary(check_usecase(settings, args.name)))
    return 0


def generate(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.data.datagen import generate_day

    day = generate_day(
        settings,
        args.date,
        rows=args.rows or settings.rows_per_day,
        seed=args.seed,
        scenario=args.scenario,
        schema_break=args.schema_break,
        file_format=args.format,
    )
    if args.json:
        print_json({"path": str(day.path), "rows": day.rows, "scenario": str(day.scenario)})
    else:
        print(f"Wrote {day.rows} rows ({day.scenario}) to {day.path}")
    return 0


def ingest(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.data.ingestion import BatchRejected, ingest_day

    code = 0
    try:
        with stage(f"ingesting {settings.spec.dataset} {args.date}"):
            report = ingest_day(settings, args.date)
    except BatchRejected as rejected:
        report, code = rejected.report, EXIT_REJECTED
    if args.json:
        print_json(report.to_dict())
        return code
    print(f"{report.day}: {report.status}: {report.message}")
    print(
        f"  rows landed {report.rows_landed}, valid {report.rows_valid}, "
        f"quarantined {report.rows_quarantined}"
    )
    for failed in report.failed_expectations:
        print("  failed: " + ", ".join(f"{k} {cell(v)}" for k, v in failed.items()))
    for label, path in (
        ("lake", report.validated_partition),
        ("quarantine", report.quarantine_partition),
        ("Data Docs", report.data_docs),
    ):
        if path:
            print(f"  {label}: {path}")
    return code


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.serving.server import serve

    # Fix the use case before serving: workers read it from the environment.
    settings = settings.for_usecase(settings.usecase_name)
    serve(settings, args.host, args.port, args.workers)
    return 0


def status(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.platform.status import platform_status

    state = platform_status(settings, args.limit)
    if args.json:
        print_json(state)
    else:
        print(status_text(state))
    return 0


def status_text(state: dict[str, Any]) -> str:
    """``platform_status`` for a person: a few lines and short tables."""
    usecase, ingestion, models = state["usecase"], state["ingestion"], state["models"]
    metrics = [m["metric"] for m in usecase["metrics"]]
    lines = [
        f"{usecase['name']}: {usecase['task']}, {usecase['cadence']}; entity "
        f"{usecase['entity_key']}, label {usecase['label']} "
        f"({state['profile']}, {state['mlops_home']})",
        "",
        "Validated partitions (newest first):",
    ]
    lines.append(_partitions(ingestion["validated_partitions"]))
    quarantined = ingestion["quarantined_partitions"]
    if quarantined:
        lines += ["Quarantined:", _partitions(quarantined, message=True)]
    lines += ["", "Features online:"]
    materialized = state["features"]["materialized"]
    lines.append(
        table(
            ["view", "from", "to", "intervals"],
            [[v, r["from"], r["to"], r["intervals"]] for v, r in materialized.items()],
        )
        if materialized
        else "  none materialized yet"
    )
    aliases = ", ".join(f"{a} {cell(v)}" for a, v in models["aliases"].items())
    lines += ["", f"Model {models['registered_model']} ({aliases}):"]
    versions = models["versions"]
    lines.append(
        table(
            ["version", "aliases", *metrics, "data window", "trigger"],
            [
                [
                    v["version"],
                    v["aliases"],
                    *(v["metrics"].get(m) for m in metrics),
                    v["data_window"],
                    v["trigger_reason"],
                ]
                for v in versions
            ],
        )
        if versions
        else "  no version registered yet"
    )
    decisions = models["last_decisions"]
    if decisions:
        lines += ["Last decisions:"]
        lines += [
            f"  {d['decided_at']}  v{d['version']} {d['action']}: {d['outcome']}"
            + (f" ({'; '.join(d['reasons'])})" if d.get("reasons") else "")
            for d in decisions
        ]
    nights = state["monitoring"]["nights"]
    lines += ["", "Drift checks:"]
    lines.append(
        table(
            ["night", "status", "champion", "drift share", "retrain", "why"],
            [
                [
                    n["night"],
                    n["status"],
                    n["champion_version"],
                    n["drift_share"],
                    n["retrain"],
                    "; ".join(n["reasons"]),
                ]
                for n in nights
            ],
        )
        if nights
        else "  none yet"
    )
    lines += [
        "",
        f"Data Docs: {ingestion['data_docs']}",
        f"Drift reports: {state['monitoring']['reports']}",
    ]
    return "\n".join(lines)


def _partitions(partitions: list[dict[str, Any]], message: bool = False) -> str:
    if not partitions:
        return "  none yet"
    headers = ["date", "status", "valid", "quarantined"]
    rows = [[p["date"], p["status"], p["rows_valid"], p["rows_quarantined"]] for p in partitions]
    if message:
        headers.append("message")
        for row, p in zip(rows, partitions, strict=True):
            row.append(p["message"])
    return table(headers, rows)
