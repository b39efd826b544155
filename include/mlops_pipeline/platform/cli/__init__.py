"""mlops-pipeline: the platform's command line (run it with --help for every command).

Each command is a function ``(args, settings) -> exit code`` in ``COMMANDS``; the commands
that do a pipeline step call the same package functions as the DAG's task does.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.failures import PermanentFailure, TransientFailure
from mlops_pipeline.platform.cli import data_commands, model_commands
from mlops_pipeline.platform.cli.output import EXIT_PERMANENT, EXIT_REJECTED, EXIT_TRANSIENT
from mlops_pipeline.platform.cli.parser import build_parser

__all__ = ["COMMANDS", "EXIT_PERMANENT", "EXIT_REJECTED", "EXIT_TRANSIENT", "build_parser", "main"]

COMMANDS = {
    "usecases": data_commands.usecases,
    "new_usecase": data_commands.new_usecase,
    "check_usecase": data_commands.check_usecase,
    "generate": data_commands.generate,
    "ingest": data_commands.ingest,
    "serve": data_commands.serve,
    "status": data_commands.status,
    "train": model_commands.train,
    "deploy": model_commands.deploy,
    "drift": model_commands.drift,
    "predict": model_commands.predict,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The stage lines say what is happening; MLflow's download bars would bury them.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    debug = args.debug or os.environ.get("MLOPS_DEBUG", "") not in ("", "0")
    try:
        return _run(args, get_settings())
    except (PermanentFailure, TransientFailure) as failure:
        # Expected: the message says what to fix; a traceback would bury it.
        if debug:
            traceback.print_exc()
        print(f"error: {failure}", file=sys.stderr)
        return EXIT_TRANSIENT if isinstance(failure, TransientFailure) else EXIT_PERMANENT


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.platform.relocate import follow_move

    if getattr(args, "usecase", None):
        settings = settings.for_usecase(args.usecase)
    # A moved MLOPS_HOME: status and the commands that only read files would otherwise show
    # the old home's paths until some task opened MLflow or Feast.
    follow_move(settings)
    return COMMANDS[args.command.replace("-", "_")](args, settings)
