"""``mlops-pipeline``: the platform's command line.

mlops-pipeline usecases                              (the declared use cases)
mlops-pipeline new-usecase NAME --from FILE --entity COL --timestamp COL --label COL
mlops-pipeline check-usecase NAME
mlops-pipeline generate --date 2025-06-02 [--scenario clean] [--rows N] [--seed S]
mlops-pipeline ingest --date 2025-06-02              (the ingestion logic without Airflow)
                                                     (hourly use cases: --date 2025-06-02T05)
mlops-pipeline serve [--port 8080]                   (one model server per use case)
mlops-pipeline status

Commands about one use case take ``--usecase NAME`` (default ``MLOPS_USECASE``, else the only
declared one). Expected failures (a bad declaration, bad data, a failed gate) print one message
and exit with 2; a rejected batch prints its report and exits with 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.failures import PermanentFailure

# Exit codes: a rejected batch (its report is printed) and any other expected failure.
EXIT_REJECTED = 1
EXIT_FAILURE = 2
DATE_HELP = (
    "the partition holding this day, or this hour for an hourly use case "
    "(YYYY-MM-DD, YYYY-MM-DDTHH[:MM], UTC)"
)


def _date(text: str) -> dt.date:
    """A day, or an hour (``2025-06-02T05``, ``2025-06-02T05:00``): the partition holding it,
    in the use case's cadence, is the one meant."""
    from mlops_pipeline.usecases.vocabulary import PARTITION_PATTERN

    try:
        if not re.match(PARTITION_PATTERN, text):
            raise ValueError(text)
        return dt.datetime.fromisoformat(text) if "T" in text else dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected YYYY-MM-DD, or YYYY-MM-DDTHH[:MM] for an hour, got {text!r}"
        ) from exc


def _name(text: str) -> str:
    from mlops_pipeline.usecases.spec import NAME_PATTERN

    if not re.match(NAME_PATTERN, text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a use case's name is lower-case letters, digits and _, from a letter"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    from mlops_pipeline.data.datagen import Scenario, SchemaBreak

    parser = argparse.ArgumentParser(prog="mlops-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def for_one_usecase(name: str, help: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help)
        command.add_argument(
            "--usecase",
            type=_name,
            default=None,
            help="the use case (default MLOPS_USECASE, else the only declared one)",
        )
        return command

    commands.add_parser("usecases", help="list the declared use cases")

    new = commands.add_parser(
        "new-usecase", help="draft usecases/NAME/ and dags/NAME.py from a sample data file"
    )
    new.add_argument("name", type=_name, help="the use case's name (lower case, digits, _)")
    new.add_argument(
        "--from", dest="sample", metavar="FILE", type=Path, required=True, help="CSV or Parquet"
    )
    new.add_argument("--entity", required=True, help="the entity key column (integers)")
    new.add_argument("--timestamp", required=True, help="the event timestamp column (UTC)")
    new.add_argument("--label", required=True, help="the column the model predicts")
    new.add_argument(
        "--task",
        choices=["binary_classification", "regression"],
        default=None,
        help="default: from the label (two values: binary classification)",
    )
    new.add_argument(
        "--cadence",
        choices=["hourly", "daily", "weekly"],
        default="daily",
        help="one partition per hour, day or week (from Monday), UTC (default daily)",
    )
    new.add_argument("--dataset", default=None, help="the landing dataset (default: NAME)")
    new.add_argument(
        "--dags-dir",
        type=Path,
        default=None,
        help="where the DAG file goes (default: AIRFLOW__CORE__DAGS_FOLDER, else dags/)",
    )

    check = commands.add_parser("check-usecase", help="validate a use case's declaration")
    check.add_argument("name", type=_name)

    generate = for_one_usecase("generate", "write a partition of demo data to the landing zone")
    generate.add_argument("--date", type=_date, required=True, help=DATE_HELP)
    generate.add_argument("--scenario", choices=[s.value for s in Scenario], default="clean")
    generate.add_argument("--rows", type=int, default=None, help="rows (MLOPS_ROWS_PER_DAY)")
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument(
        "--schema-break",
        choices=[s.value for s in SchemaBreak],
        default=None,
        help="for --scenario schema_break: how the schema breaks (default renamed)",
    )
    generate.add_argument("--format", choices=["csv", "parquet"], default="csv")

    ingest = for_one_usecase("ingest", "validate and split one landed partition (no Airflow)")
    ingest.add_argument("--date", type=_date, required=True, help=DATE_HELP)

    serve = for_one_usecase("serve", "run the use case's model server (champion alias)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--workers", type=int, default=None, help="worker processes (MLOPS_SERVING_WORKERS)"
    )

    status = for_one_usecase("status", "print a JSON summary of the use case's state")
    status.add_argument("--limit", type=int, default=7, help="partitions to list")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args, get_settings())
    except PermanentFailure as failure:
        print(f"mlops-pipeline {args.command}: {failure}", file=sys.stderr)
        return EXIT_FAILURE


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "usecase", None):
        settings = settings.for_usecase(args.usecase)
    command = args.command.replace("-", "_")
    return COMMANDS[command](args, settings)


def _usecases(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.usecases.check import check_usecase
    from mlops_pipeline.usecases.loader import declared_usecases

    declared = declared_usecases(settings.usecases_dir)
    if not declared:
        print(f"No use case under {settings.usecases_dir} (mlops-pipeline new-usecase ...)")
    for name in declared:
        try:
            spec = check_usecase(settings, name)
        except PermanentFailure as exc:
            first = str(exc).splitlines()[-1].strip(" -")
            print(f"{name:<24} INVALID: {first} (mlops-pipeline check-usecase {name})")
            continue
        print(
            f"{name:<24} {spec.task.value:<22} {spec.cadence.value:<7} entity "
            f"{spec.entity.key}, label {spec.label}, model {spec.model_name}"
        )
    return 0


def _new_usecase(args: argparse.Namespace, settings: Settings) -> int:
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


def _check_usecase(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.usecases.check import check_usecase, summary

    print(summary(check_usecase(settings, args.name)))
    return 0


def _generate(args: argparse.Namespace, settings: Settings) -> int:
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
    print(json.dumps({"path": str(day.path), "rows": day.rows, "scenario": str(day.scenario)}))
    return 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.data.ingestion import BatchRejected, ingest_day

    try:
        report = ingest_day(settings, args.date)
    except BatchRejected as rejected:
        print(json.dumps(rejected.report.to_dict(), indent=2, default=str))
        return EXIT_REJECTED
    print(json.dumps(report.to_dict(), indent=2, default=str))
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.serving.server import serve

    # Fix the use case before serving: workers read it from the environment.
    settings = settings.for_usecase(settings.usecase_name)
    serve(settings, args.host, args.port, args.workers)
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.platform.status import platform_status

    print(json.dumps(platform_status(settings, args.limit), indent=2, default=str))
    return 0


COMMANDS = {
    "usecases": _usecases,
    "new_usecase": _new_usecase,
    "check_usecase": _check_usecase,
    "generate": _generate,
    "ingest": _ingest,
    "serve": _serve,
    "status": _status,
}


if __name__ == "__main__":
    sys.exit(main())
