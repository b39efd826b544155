"""Read a landed file as it is: its content hash and its table, types left for the suite to
judge. The landing zone is only ever read.
"""

from __future__ import annotations

import hashlib
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
                # An empty cell of a category column is a null, as it is in a number column.
                strings_can_be_null=True,
            ),
        )
    # Arrow's allocator keeps the pages the parse freed (the raw blocks, ~2x the table) for
    # reuse; nothing after the read needs them, and they would sit under every later peak.
    pa.default_memory_pool().release_unused()
    return table
