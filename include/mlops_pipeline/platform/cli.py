"""``mlops-pipeline``: the platform's command line.

mlops-pipeline generate --date 2025-06-02 [--scenario clean] [--rows N] [--seed S]
mlops-pipeline ingest --date 2025-06-02        (the ingestion logic without Airflow)
mlops-pipeline status
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from mlops_pipeline.config import get_settings


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    from mlops_pipeline.data.datagen import Scenario, SchemaBreak

    parser = argparse.ArgumentParser(prog="mlops-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write a day of demo data to the landing zone")
    generate.add_argument("--date", type=_date, required=True)
    generate.add_argument("--scenario", choices=[s.value for s in Scenario], default="clean")
    generate.add_argument("--rows", type=int, default=None, help="customers (MLOPS_ROWS_PER_DAY)")
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument(
        "--schema-break",
        choices=[s.value for s in SchemaBreak],
        default=None,
        help="for --scenario schema_break: how the schema breaks (default renamed)",
    )
    generate.add_argument("--format", choices=["csv", "parquet"], default="csv")

    ingest = commands.add_parser("ingest", help="validate and split one landed day (no Airflow)")
    ingest.add_argument("--date", type=_date, required=True)

    serve = commands.add_parser("serve", help="run the model server (champion alias)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--workers", type=int, default=None, help="worker processes (MLOPS_SERVING_WORKERS)"
    )

    status = commands.add_parser("status", help="print a JSON summary of the platform state")
    status.add_argument("--limit", type=int, default=7, help="partitions to list")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    if args.command == "generate":
        from mlops_pipeline.data.datagen import generate_day

        day = generate_day(
            settings.landing_dir,
            args.date,
            rows=args.rows or settings.rows_per_day,
            seed=args.seed,
            scenario=args.scenario,
            schema_break=args.schema_break,
            file_format=args.format,
        )
        print(json.dumps({"path": str(day.path), "rows": day.rows, "scenario": day.scenario}))
        return 0
    if args.command == "ingest":
        from mlops_pipeline.data.ingestion import BatchRejected, ingest_day

        try:
            report = ingest_day(settings, args.date)
        except BatchRejected as rejected:
            print(json.dumps(rejected.report.to_dict(), indent=2, default=str))
            return 1
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return 0
    if args.command == "serve":
        from mlops_pipeline.serving.server import serve

        serve(settings, args.host, args.port, args.workers)
        return 0
    if args.command == "status":
        from mlops_pipeline.platform.status import platform_status

        print(json.dumps(platform_status(settings, args.limit), indent=2, default=str))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
