"""How commands print: short tables and lines on stdout for people, ``--json`` for machines,
stage lines on stderr so that progress never mixes with what a script parses."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import Any

EXIT_REJECTED = 1  # a verdict of no, with its report printed
# 2 is argparse's, for bad usage.
EXIT_PERMANENT = 3
EXIT_TRANSIENT = 4


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [
        bool(rows) and all(_is_number(row[i]) or row[i] is None for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return (indent + "  ".join(padded)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in cells)])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)


@contextmanager
def stage(what: str) -> Generator[None, None, None]:
    """``what`` on stderr when it starts and, with its duration, when it ends (or fails)."""
    print(f"... {what}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        print(f"    {what}: failed after {_seconds(started)}", file=sys.stderr, flush=True)
        raise
    print(f"    {what}: done in {_seconds(started)}", file=sys.stderr, flush=True)


def _seconds(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s"
