"""What the demo's terminal shows while it runs: one progress line per partition, while the DAG
runs' own output (task logs, library warnings, Feast's progress bars, Airflow's migrations)
goes to a log file, as the scheduler would keep it in task logs."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

LOG_NAME = "demo.log"
# A progress line's error stays one line.
ERROR_CHARS = 160


def log_path(home: Path) -> Path:
    return home / LOG_NAME


@contextmanager
def output_to(log: Path) -> Generator[TextIO, None, None]:
    """Send this process's stdout and stderr (and its children's) to ``log`` for the block;
    yields a stream to the terminal, for what the demo itself has to say meanwhile.

    At the file descriptors, not ``sys.stdout``: Airflow's log handlers, MLflow's and Feast's
    progress output hold their own references to the streams, and the model server is a child
    process. An exception leaving the block is raised as usual, after the terminal is
    restored."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(log, "ab") as sink, open(os.dup(saved[0]), "w", buffering=1) as terminal:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield terminal
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def progress_line(usecase: str, row: dict[str, Any]) -> str:
    """One line per partition: what its DAG runs led to, and why the ingestion failed if it
    did (its report's message)."""
    outcome = f"{row['dag_run']}, champion {row['champion']}, {row['model']}"
    if row.get("error"):
        error = " ".join(str(row["error"]).split())
        if len(error) > ERROR_CHARS:
            error = error[: ERROR_CHARS - 1] + "…"
        outcome += f": {error}"
    return f"{usecase:<14} {row['date']:<13} {row['scenario']:<16} {outcome} ({row['seconds']} s)"
