"""What a sample says about its use case: the task its label implies, and each column's kind,
range or value set as the contract declares them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.usecases.scaffold import ScaffoldError
from mlops_pipeline.usecases.spec import Kind, Task

if TYPE_CHECKING:
    import pyarrow as pa

# A text column is a closed value set when it has at most this many distinct values and each
# value appears at least twice on average; otherwise any string is allowed.
MAX_CATEGORY_VALUES = 50
# Text labels a classifier reads as booleans (the reader already maps true/false).
BOOL_WORDS: tuple[frozenset[str], ...] = (frozenset({"true", "false"}), frozenset({"yes", "no"}))
TRUE_WORDS = frozenset({"true", "yes"})
# Ranges are the sample's, widened by this share of their span on each side (a floor of 0 when
# the sample has no negative value): a sample rarely holds the extremes of the real data.
RANGE_MARGIN = 0.5
SAMPLE_FORMATS = (".csv", ".parquet")
# A number column whose feed writes a text for a missing value ("n/a", "-"): at most this many
# distinct such texts, none holding a digit, are drafted as the column's ``null_markers``.
MAX_NULL_MARKERS = 3


def read_sample(path: Path) -> pa.Table:
    """The sample as ingestion reads a landing file (pyarrow, ISO 8601 timestamps, only an
    empty cell is a null)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ScaffoldError(f"--from: no file {path}")
    if path.suffix not in SAMPLE_FORMATS:
        raise ScaffoldError(f"--from: {path.name} is not a CSV or Parquet file")
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        return pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                timestamp_parsers=[pacsv.ISO8601], null_values=[""], strings_can_be_null=True
            ),
        )
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise ScaffoldError(f"--from: {path} is not readable: {exc}") from exc


def infer_task(table: pa.Table, label: str) -> Task:
    """Two label values: a binary classifier; more numbers: a regression."""
    import pyarrow as pa

    column = require_column(table, label, "--label")
    values = column.drop_null().unique().to_pylist()
    if pa.types.is_boolean(column.type) or _bool_words(column) is not None:
        return Task.BINARY_CLASSIFICATION
    if len(values) <= 2 and (pa.types.is_integer(column.type) or _numeric(column.type)):
        if set(values) <= {0, 1}:
            return Task.BINARY_CLASSIFICATION
        raise ScaffoldError(
            f"--label: {label!r} has the two values {sorted(values)}: a classifier needs 0/1 "
            "or true/false (recode it), or pass --task regression"
        )
    if _numeric(column.type):
        return Task.REGRESSION
    raise ScaffoldError(
        f"--label: {label!r} holds {len(values)} text values: only binary classification "
        "(0/1, true/false, yes/no) and regression (numbers) are supported"
    )


def infer_column(
    table: pa.Table,
    name: str,
    entity_key: str,
    timestamp: str,
    label: str,
    task: Task,
    notes: list[str],
) -> dict[str, Any]:
    """The declared form of one column as the sample holds it; ``notes`` gets what the user
    should review."""
    import pyarrow as pa

    column = table.column(name)
    nulls = column.null_count
    kind_of = column.type
    if pa.types.is_dictionary(kind_of):
        kind_of = kind_of.value_type
    role = {entity_key: "--entity", timestamp: "--timestamp", label: "--label"}.get(name)
    if role and nulls:
        raise ScaffoldError(f"{role}: {name!r} has {nulls} empty value(s) in the sample")
    if role == "--timestamp":
        if not pa.types.is_timestamp(kind_of):
            raise ScaffoldError(
                f"--timestamp: {name!r} is {kind_of}, not ISO 8601 timestamps "
                "(e.g. 2025-06-02T10:00:00Z)"
            )
        if kind_of.tz is None:
            raise ScaffoldError(
                f"--timestamp: {name!r} has no time zone: landing files need UTC timestamps "
                "(a Z or +00:00 suffix)"
            )
        return {"kind": Kind.TIMESTAMP.value}
    if pa.types.is_timestamp(kind_of) or pa.types.is_date(kind_of) or pa.types.is_time(kind_of):
        raise ScaffoldError(
            f"column {name!r} holds dates or times: only the event timestamp may; drop it or "
            "turn it into a number (e.g. days since)"
        )
    if role == "--entity":
        if not pa.types.is_integer(kind_of):
            raise ScaffoldError(
                f"--entity: {name!r} is {kind_of}: the entity key must be an int column"
            )
        low = _min_max(column)[0]
        return {"kind": Kind.INT.value, **({"min": 0} if low >= 0 else {})}
    if role == "--label":
        return _label(column, name, task, notes)
    spec: dict[str, Any]
    markers: list[str] = []
    if pa.types.is_string(kind_of) or pa.types.is_large_string(kind_of):
        markers, numbers = _marked_numbers(column)
        if markers:
            notes.append(f"{name}: {markers} read as missing values (null_markers)")
            column, kind_of, nulls = numbers, numbers.type, numbers.null_count
    if pa.types.is_boolean(kind_of):
        spec = {"kind": Kind.BOOL.value}
    elif _numeric(kind_of):
        integral = pa.types.is_integer(kind_of) and not nulls
        if pa.types.is_integer(kind_of) and nulls:
            # pandas holds integers with gaps as floats: declared float, as the lake holds it.
            notes.append(f"{name}: integers with empty values, declared float")
        low, high = _min_max(column)
        spec = {"kind": (Kind.INT if integral else Kind.FLOAT).value}
        spec |= _widened(low, high, integral)
    elif pa.types.is_string(kind_of) or pa.types.is_large_string(kind_of):
        values = sorted(str(v) for v in column.drop_null().unique().to_pylist())
        spec = {"kind": Kind.CATEGORY.value}
        if len(values) <= MAX_CATEGORY_VALUES and 2 * len(values) <= len(column) - nulls:
            spec["values"] = values
        else:
            notes.append(f"{name}: {len(values)} distinct values, left open (any string)")
    else:
        raise ScaffoldError(f"column {name!r} is {kind_of}: no kind of the contract fits it")
    if markers:
        spec["null_markers"] = markers
    if nulls:
        spec["nullable"] = True
    return spec


def _marked_numbers(column: pa.ChunkedArray) -> tuple[list[str], pa.ChunkedArray]:
    """A text column that is numbers but for a few texts without digits: those texts, and the
    column as numbers with them as nulls; ``[]`` (and the column) otherwise."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = column.cast(pa.string())
    distinct = [str(v) for v in text.drop_null().unique().to_pylist()]
    markers = sorted(v for v in distinct if not _is_number(v))
    plausible = all(len(m) <= 12 and not any(c.isdigit() for c in m) for m in markers)
    if not markers or len(markers) > MAX_NULL_MARKERS or len(markers) == len(distinct):
        return [], column
    if not plausible:
        return [], column
    hit = pc.is_in(text, value_set=pa.array(markers, pa.string()))
    numbers = pc.if_else(hit, pa.scalar(None, pa.string()), text)
    try:
        return markers, numbers.cast(pa.int64())
    except pa.ArrowInvalid:
        return markers, numbers.cast(pa.float64())


def _is_number(text: str) -> bool:
    """As ingestion parses a number (pyarrow's cast: stricter than ``float``)."""
    import pyarrow as pa

    try:
        pa.array([text]).cast(pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def _label(column: pa.ChunkedArray, name: str, task: Task, notes: list[str]) -> dict[str, Any]:
    import pyarrow as pa

    if task is Task.BINARY_CLASSIFICATION:
        if pa.types.is_boolean(column.type):
            return {"kind": Kind.BOOL.value}
        if _bool_words(column) is not None:
            notes.append(f"{name}: yes/no text declared bool: landing files must carry true/false")
            return {"kind": Kind.BOOL.value}
        values = set(column.drop_null().unique().to_pylist())
        if pa.types.is_integer(column.type) and values <= {0, 1}:
            return {"kind": Kind.INT.value, "min": 0, "max": 1}
        raise ScaffoldError(
            f"--label: {name!r} ({column.type}, values {sorted(map(str, values))[:5]}) is not "
            "0/1 or true/false, as a classifier's label must be"
        )
    if not _numeric(column.type):
        raise ScaffoldError(f"--label: {name!r} is {column.type}: a regression label is a number")
    low = _min_max(column)[0]
    kind = Kind.INT if pa.types.is_integer(column.type) else Kind.FLOAT
    return {"kind": kind.value, **({"min": 0} if low >= 0 else {})}


def require_column(table: pa.Table, name: str, option: str) -> pa.ChunkedArray:
    """The column ``option`` names, or a ``ScaffoldError`` saying the sample lacks it."""
    if name not in table.column_names:
        raise ScaffoldError(f"{option}: no column {name!r} in the sample ({table.column_names})")
    return table.column(name)


def _numeric(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _bool_words(column: pa.ChunkedArray) -> frozenset[str] | None:
    import pyarrow as pa

    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None
    seen = frozenset(str(v).strip().lower() for v in column.drop_null().unique().to_pylist())
    return next((words for words in BOOL_WORDS if seen and seen <= words), None)


def _min_max(column: pa.ChunkedArray) -> tuple[float, float]:
    import pyarrow.compute as pc

    extremes = pc.min_max(column)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    if low is None or high is None:
        raise ScaffoldError("a numeric column has no value in the sample")
    return float(low), float(high)


def _widened(low: float, high: float, integral: bool) -> dict[str, float | int]:
    span = (high - low) or abs(high) or 1.0
    lower = 0.0 if low >= 0 else _nice(low - RANGE_MARGIN * span, up=False)
    upper = _nice(high + RANGE_MARGIN * span, up=True)
    if integral:
        return {"min": int(math.floor(lower)), "max": int(math.ceil(upper))}
    return {"min": lower, "max": upper}


def _nice(value: float, up: bool) -> float:
    """``value`` rounded outwards to two significant digits (127.3 -> 130, -0.0412 -> -0.042)."""
    if value == 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(abs(value))) - 1)
    rounded = (math.ceil if up else math.floor)(value / step) * step
    return float(f"{rounded:.12g}")
