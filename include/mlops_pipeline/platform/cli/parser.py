"""The argument parser: every subcommand with a description, its options and examples."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from importlib import metadata
from pathlib import Path

PROG = "mlops-pipeline"
DATE_HELP = (
    "the partition holding this day, or this hour for an hourly use case "
    "(YYYY-MM-DD, YYYY-MM-DDTHH[:MM], UTC)"
)
# datagen's Scenario and SchemaBreak values, spelled out so that building the parser does not
# import pandas (a test keeps them equal).
SCENARIOS = (
    "clean",
    "covariate_drift",
    "concept_drift",
    "schema_break",
    "null_burst",
    "out_of_range",
    "duplicates",
    "empty",
    "corrupt",
)
SCHEMA_BREAKS = ("renamed", "dropped", "retyped")
# The platform's pinned services, named in --version so a bug report says what ran.
COMPONENTS = ("apache-airflow", "mlflow", "feast")

EXIT_CODES = """\
exit codes:
  0  done
  1  a verdict of no: a rejected batch (ingest), a rejected or unapproved challenger (deploy)
  2  bad usage (an unknown option, a malformed date)
  3  an expected, permanent failure: a bad declaration, bad or missing data, no model to use
  4  a service unavailable or busy (tracking server, database, online store): retry later
Expected failures print one line, "error: ..."; --debug (or MLOPS_DEBUG=1) adds the traceback."""

DESCRIPTION = f"""\
The platform's command line: declare a use case, land and ingest its data, train, deploy,
monitor and score it without Airflow, and see its state.

Commands about one use case take --usecase NAME (default: MLOPS_USECASE, else the only
declared one). Commands that print data print short tables; --json prints JSON instead.
Progress lines go to stderr.

{EXIT_CODES}"""

EXAMPLES = {
    "usecases": "mlops-pipeline usecases",
    "new-usecase": (
        "mlops-pipeline new-usecase employment --from sample.csv \\\n"
        "      --entity person_id --timestamp observed_at --label employed --cadence weekly"
    ),
    "check-usecase": "mlops-pipeline check-usecase NAME",
    "generate": (
        "mlops-pipeline generate --usecase NAME --date 2025-06-02\n"
        "  mlops-pipeline generate --date 2025-06-02 --scenario schema_break "
        "--schema-break dropped"
    ),
    "ingest": (
        "mlops-pipeline ingest --usecase NAME --date 2025-06-02\n"
        "  mlops-pipeline ingest --usecase NAME --date 2025-06-02T05   (an hourly use case)"
    ),
    "serve": "mlops-pipeline serve --usecase NAME --port 8080",
    "status": "mlops-pipeline status --usecase NAME\n  mlops-pipeline status --json | jq .models",
    "train": (
        "mlops-pipeline train --usecase NAME\n"
        "  mlops-pipeline train --window-end 2025-06-28 --reason 'new features'"
    ),
    "deploy": (
        "mlops-pipeline deploy --usecase NAME             (the challenger alias)\n"
        "  mlops-pipeline deploy --version 3 --approve       (when approval is required)\n"
        "  mlops-pipeline deploy --evaluate-only --json"
    ),
    "drift": "mlops-pipeline drift --usecase NAME --date 2025-06-28",
    "predict": (
        "mlops-pipeline predict --usecase NAME --input rows.csv\n"
        "  mlops-pipeline predict --input rows.json --json\n"
        "  mlops-pipeline predict --ids 17 42        (features from the online store)"
    ),
}


def version_text() -> str:
    """The package's version and the installed versions of the services it is built on."""

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    parts = ", ".join(f"{name} {installed(name)}" for name in COMPONENTS)
    return f"{PROG} {installed(PROG)} ({parts})"


def _date(text: str) -> dt.date:
    """A day, or an hour (2025-06-02T05, 2025-06-02T05:00): the partition holding it, in the
    use case's cadence, is the one meant."""
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
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an expected failure too"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # On every subcommand too, so it may follow the command; SUPPRESS keeps the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an expected failure too (MLOPS_DEBUG=1)",
    )
    common.set_defaults(json=False)

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=f"{help[0].upper()}{help[1:]}.\n\n{description}".rstrip(),
            epilog=f"example:\n  {EXAMPLES[name]}\n\n{EXIT_CODES}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )

    def for_one_usecase(name: str, help: str, description: str) -> argparse.ArgumentParser:
        sub = command(name, help, description)
        sub.add_argument(
            "--usecase",
            type=_name,
            default=None,
            help="the use case (default MLOPS_USECASE, else the only declared one)",
        )
        return sub

    def printing_json(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--json", action="store_true", help="print JSON instead of a summary")
        return sub

    printing_json(
        command(
            "usecases",
            "list the declared use cases",
            "One line per folder under MLOPS_USECASES_DIR: task, cadence, entity, label and\n"
            "model, or why the declaration is invalid.",
        )
    )

    new = command(
        "new-usecase",
        "draft usecases/NAME/ and dags/NAME.py from a sample data file",
        "Reads the sample's columns and types, writes a declaration to review and a DAG\n"
        "file, and says what to edit next. An existing use case is never overwritten.",
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

    check = command(
        "check-usecase",
        "validate a use case's declaration",
        "Loads usecases/NAME/usecase.yaml and its transforms; every problem is listed at once,\n"
        "each naming its field.",
    )
    check.add_argument("name", type=_name, help="the use case's folder name")

    generate = printing_json(
        for_one_usecase(
            "generate",
            "write a partition of demo data to the landing zone",
            "Synthetic rows from the declaration's columns, clean or with a chosen fault, as\n"
            "landing/DATASET/date=KEY/DATASET.csv (or .parquet).",
        )
    )
    generate.add_argument("--date", type=_date, required=True, help=DATE_HELP)
    generate.add_argument("--scenario", choices=SCENARIOS, default="clean", help="default clean")
    generate.add_argument("--rows", type=int, default=None, help="rows (MLOPS_ROWS_PER_DAY)")
    generate.add_argument("--seed", type=int, default=7, help="default 7")
    generate.add_argument(
        "--schema-break",
        choices=SCHEMA_BREAKS,
        default=None,
        help="for --scenario schema_break: how the schema breaks (default renamed)",
    )
    generate.add_argument("--format", choices=["csv", "parquet"], default="csv")

    ingest = printing_json(
        for_one_usecase(
            "ingest",
            "validate and split one landed partition (no Airflow)",
            "The ingest DAG's logic: validates the landed file against the declaration, writes\n"
            "the valid rows to the lake and the bad ones to quarantine. A rejected batch prints\n"
            "its report and exits with 1.",
        )
    )
    ingest.add_argument("--date", type=_date, required=True, help=DATE_HELP)

    serve = for_one_usecase(
        "serve",
        "run the use case's model server (champion alias)",
        "Serves models:/MODEL@champion over HTTP (POST /predict, /health, /metrics) and swaps\n"
        "to a new champion when the alias moves.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="default 8080")
    serve.add_argument(
        "--workers", type=int, default=None, help="worker processes (MLOPS_SERVING_WORKERS)"
    )

    status = printing_json(
        for_one_usecase(
            "status",
            "summarise the use case's state",
            "Partitions validated and quarantined, features online, registered versions with\n"
            "their test metrics and aliases, the last decisions and drift nights. Reads files\n"
            "only, so it is quick; --json prints everything, for scripts and the MLOps view.",
        )
    )
    status.add_argument("--limit", type=int, default=7, help="partitions and nights to list")

    train = printing_json(
        for_one_usecase(
            "train",
            "train and register a challenger (no Airflow)",
            "The train DAG's training job on the window ending at --window-end: registers a\n"
            "new version of the model and points the challenger alias at it.",
        )
    )
    train.add_argument(
        "--window-end",
        type=_date,
        default=None,
        help="the window's last partition (default: the newest validated one)",
    )
    train.add_argument("--reason", default="manual", help="why, recorded on the version")

    deploy = printing_json(
        for_one_usecase(
            "deploy",
            "gate a challenger and promote it to champion (no Airflow)",
            "The deploy DAG's steps: re-scores challenger and champion on the same holdout,\n"
            "runs the declared gates, then promotes (smoke-testing MLOPS_SERVING_URL when set)\n"
            "or records the rejection. When MLOPS_REQUIRE_APPROVAL is on, --approve is the\n"
            "approval, and without it nothing is promoted. Exits with 1 when not promoted\n"
            "(--evaluate-only: when the gates fail).",
        )
    )
    deploy.add_argument(
        "--version", default=None, help="the version to evaluate (default: @challenger)"
    )
    deploy.add_argument(
        "--approve", action="store_true", help="approve the promotion if the gates pass"
    )
    deploy.add_argument(
        "--evaluate-only", action="store_true", help="run the gates; record and promote nothing"
    )

    drift = printing_json(
        for_one_usecase(
            "drift",
            "run the nightly drift and performance check for one partition",
            "The monitor_drift DAG's check: compares the partition with the champion's\n"
            "training reference, writes the night's record and report, and says whether the\n"
            "retrain policy asks for a new model (it requests nothing itself).",
        )
    )
    drift.add_argument("--date", type=_date, required=True, help=DATE_HELP)

    predict = printing_json(
        for_one_usecase(
            "predict",
            "score rows with the champion",
            "Loads models:/MODEL@champion the way the model server does and scores rows read\n"
            'from a CSV or JSON file (a list of objects, or {"instances": [...]}) holding the\n'
            "model's feature columns, or entity ids whose features are read from the online\n"
            "store. On-demand features are computed from them, as the server computes them.",
        )
    )
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, metavar="FILE", help="a .csv or .json file")
    source.add_argument("--ids", type=int, nargs="+", metavar="ID", help="entity ids")
    return parser
