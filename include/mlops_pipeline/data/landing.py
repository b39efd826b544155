"""Read a landed file as it is: its content hash and its table, types left for the suite to
judge; and say what a landing partition holds when it is not the one data file it should be.
The landing zone is only ever read.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CSV_BLOCK_BYTES = 8 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(8 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_landing_file(path: Path) -> pa.Table:
    """Read the landed file as it is; types are judged by the suite, not forced here.

    CSV blocks are parsed on all cores (pyarrow's threaded reader): about twice as fast as its
    one-block-at-a-time streaming reader, for a higher parse peak (README: ingestion). Each
    column's type is unified over the whole file,
    so a stray value far down (text in a number column) turns the column to text and the suite
    rejects the batch naming the column, rather than the file failing to parse.
    """
    import pyarrow.csv as pacsv

    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(
                # Category text arrives dictionary-encoded: cheaper to hold and to validate.
                auto_dict_encode=True,
                timestamp_parsers=[pacsv.ISO8601],
                # An empty cell is a null in every column. Nothing else is: pyarrow's default
                # list ("NA", "null", "n/a", ...) would turn a real category value into a null
                # and hide a feed's markers; a column declares its own ``null_markers``.
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    # Arrow's allocator keeps the pages the parse freed (the raw blocks, ~2x the table) for
    # reuse; nothing after the read needs them, and they would sit under every later peak.
    pa.default_memory_pool().release_unused()
    return table


def describe_entry(path: Path) -> str:
    """``name (what it is)`` of an entry of a landing partition, for messages."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return f"{path.name} (gone)"
    if stat.S_ISLNK(mode):
        if not path.exists():
            return f"{path.name} (a link to nothing)"
        target = "a directory" if path.is_dir() else "a file" if path.is_file() else "no file"
        return f"{path.name} (a link to {target})"
    if stat.S_ISDIR(mode):
        return f"{path.name} (a directory)"
    if stat.S_ISREG(mode):
        return f"{path.name} (a file of {path.stat().st_size} bytes)"
    return f"{path.name} (not a regular file)"


def layout_problem(landing: Path, entries: list[Path]) -> str | None:
    """Why a landing partition is not exactly one readable data file, or None.

    ``landing`` is the data file's path the partition landed under, ``entries`` everything
    else it holds that is not scratch (see ``storage.landing_entries``)."""
    problems = []
    if not landing.is_file():
        problems.append(f"{describe_entry(landing)} is where the data file should be")
    others = [entry for entry in entries if entry != landing]
    if others:
        problems.append(
            f"beside {landing.name} it holds {', '.join(describe_entry(e) for e in others)}"
        )
    return "; ".join(problems) or None


def layout_fingerprint(entries: list[Path]) -> str:
    """A content address of a partition that is not one data file: its entries' names and
    kinds, and the hash of each regular file."""
    digest = hashlib.sha256()
    for entry in sorted(entries):
        digest.update(describe_entry(entry).encode())
        if entry.is_file() and not entry.is_symlink():
            digest.update(file_sha256(entry).encode())
    return digest.hexdigest()
