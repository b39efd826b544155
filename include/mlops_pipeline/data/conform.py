"""A landed table typed as its contract declares, ready for the suite.

The suite judges meaning, not spelling: what is lossless to widen is widened before it runs
(whole numbers in a float column, any UTC timestamp unit, text in a categorical column), and
what is not is left for the suite's type expectations to reject, with the offending value
named here so the rejection says what to fix.

A nullable column's nulls are valid rows. Nulls in a non-nullable number, category or
timestamp column fail that row; in a non-nullable int or bool column they break the column's
type (a whole-number column with holes is read as float), which rejects the batch naming it
and its first empty row, unless the column declares ``null_markers``.

Null markers: an empty cell is a null in every column, and nothing else is unless the column
lists it in ``null_markers`` (matched as the cell's exact text; in a number column a marker
that is a number also matches that number). A marker is a null like an empty cell: a valid
value of a nullable column, a quarantined row of a non-nullable one whatever its kind (a
non-nullable int or bool column that declares markers is validated as pandas' nullable Int64
or boolean, so its nulls fail their rows instead of its type). Any other value that does not
parse as the column's kind rejects the batch; the message names the column, the value and its
row (counted from 1, the header excluded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlops_pipeline.data.contract import Kind
from mlops_pipeline.data.expectation_outcomes import shortened

if TYPE_CHECKING:
    from mlops_pipeline.usecases.spec import ColumnSpec, UseCaseSpec

# The dtype each kind is validated as, after ``conform_types`` widened what is safe to widen.
VALIDATED_DTYPES: dict[Kind, str] = {
    Kind.INT: "int64",
    Kind.FLOAT: "float64",
    Kind.CATEGORY: "category",
    Kind.BOOL: "bool",
    Kind.TIMESTAMP: "datetime64[ns, UTC]",
}
# A nullable int or bool column is conformed to pandas' nullable dtype, so its nulls stay nulls.
NULLABLE_DTYPES: dict[Kind, str] = {Kind.INT: "Int64", Kind.BOOL: "boolean"}


def validated_dtype(column: ColumnSpec) -> str:
    """The dtype a column is validated as (and ``conform_types`` conforms it to)."""
    if (column.nullable or column.null_markers) and column.kind in NULLABLE_DTYPES:
        return NULLABLE_DTYPES[column.kind]
    return VALIDATED_DTYPES[column.kind]


_NULLABLE_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
# The texts pyarrow's CSV reader reads as booleans: a bool column with markers is parsed alike.
_TRUE = ("1", "True", "TRUE", "true")
_FALSE = ("0", "False", "FALSE", "false")
_PARSED: dict[Kind, pa.DataType] = {
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOL: pa.bool_(),
}
_KIND_ARTICLE = {Kind.INT: "an int", Kind.FLOAT: "a number", Kind.BOOL: "a bool"}


def conform_types(spec: UseCaseSpec, table: pa.Table) -> pd.DataFrame:
    """The frame to validate, from the table as read.

    Widens only what is lossless to widen, so type expectations judge meaning, not spelling:
    whole numbers read as int in a float column become float, any UTC timestamp unit becomes
    ns, text in a categorical column becomes ``category``, a nullable int or bool column (or
    one that declares null markers) becomes pandas' nullable Int64 or boolean (so its nulls
    stay nulls, not a float column). A column's declared null markers become nulls first, and
    a number or bool column the markers kept as text is parsed. Anything else (a tz-naive
    timestamp, text in a number column) is left for the suite to reject.

    It works on the Arrow table so pandas receives consolidated blocks in one conversion: Great
    Expectations copies the whole frame for every column-map expectation, and that copy is only
    cheap on a consolidated frame whose categories are small codes, not Python strings.
    """
    nullable: dict[str, pa.ChunkedArray] = {}
    for name, col in spec.columns.items():
        if name not in table.column_names:
            continue
        index = table.schema.get_field_index(name)
        original = table.column(index)
        column = _without_markers(col, original) if col.null_markers else original
        arrow_type = column.type
        if validated_dtype(col) in NULLABLE_DTYPES.values():
            target = _PARSED[col.kind]
            if pa.types.is_null(arrow_type):  # a column of nulls only
                nullable[name] = pa.chunked_array([pa.nulls(len(table), target)])
                continue
            if (col.kind is Kind.INT and pa.types.is_integer(arrow_type)) or (
                col.kind is Kind.BOOL and pa.types.is_boolean(arrow_type)
            ):
                nullable[name] = column.cast(target)
                continue
        elif col.kind is Kind.FLOAT and pa.types.is_integer(arrow_type):
            column = column.cast(pa.float64())
        elif (
            col.kind is Kind.TIMESTAMP
            and pa.types.is_timestamp(arrow_type)
            and arrow_type.tz in ("UTC", "+00:00")
        ):
            column = column.cast(pa.timestamp("ns", tz="UTC"))
        elif col.kind is Kind.CATEGORY and (
            pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
        ):
            column = column.dictionary_encode()
        elif col.kind is Kind.FLOAT and pa.types.is_null(arrow_type):  # nulls only
            column = pa.chunked_array([pa.nulls(len(table), pa.float64())])
        elif col.kind is Kind.CATEGORY and pa.types.is_null(arrow_type):
            column = pa.chunked_array([pa.nulls(len(table), pa.string())]).dictionary_encode()
        if column is not original:
            table = table.set_column(index, name, column)
    frame = table.to_pandas()
    for name, column in nullable.items():
        frame[name] = column.to_pandas(types_mapper=_NULLABLE_PANDAS_TYPES.get).array
    return frame


def _is_text(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        return _is_text(arrow_type.value_type)
    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _without_markers(col: ColumnSpec, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` with ``col``'s null markers as nulls; a number or bool column that was text
    only because of them is parsed (if the rest does not parse, it stays text)."""
    if _is_text(column.type):
        text = column.cast(pa.string())
        hit = pc.is_in(text, value_set=pa.array(col.null_markers, pa.string()))
        text = pc.if_else(hit, pa.scalar(None, pa.string()), text)
        if col.kind not in _PARSED:
            return text
        parsed = _parse(col.kind, text)
        return text if parsed is None else parsed
    numbers = col.numeric_markers
    if numbers and (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        hit = pc.is_in(column.cast(pa.float64()), value_set=pa.array(numbers, pa.float64()))
        return pc.if_else(hit, pa.scalar(None, column.type), column)
    return column


def _parse(kind: Kind, text: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array | None:
    """``text`` as ``kind``'s values, or None when some value does not parse."""
    if kind is Kind.BOOL:
        known = pc.or_kleene(pc.is_in(text, value_set=pa.array(_TRUE + _FALSE)), pc.is_null(text))
        if not pc.all(known).as_py():
            return None
        is_true = pc.is_in(text, value_set=pa.array(_TRUE))
        return pc.if_else(pc.is_null(text), pa.scalar(None, pa.bool_()), is_true)
    try:
        return text.cast(_PARSED[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def unparsable_values(spec: UseCaseSpec, table: pa.Table) -> dict[str, str]:
    """Per number or bool column whose type the suite will reject: its first offending row and
    value, e.g. ``row 12 holds 'n/a', which is not an int`` (rows counted from 1). Only columns
    read as text or as the wrong kind of number are looked at, so a clean batch costs
    nothing."""
    found: dict[str, str] = {}
    for name, col in spec.columns.items():
        if col.kind not in _PARSED or name not in table.column_names:
            continue
        column = table.column(name)
        if col.null_markers:
            column = _without_markers(col, column)
        if _is_text(column.type):
            values = column.cast(pa.string()).combine_chunks()
            if _parse(col.kind, values) is None:
                row = _first_failure(values, col.kind)
                found[name] = (
                    f"row {row + 1} holds {shortened(values[row].as_py(), 60)!r}, which is not "
                    f"{_KIND_ARTICLE[col.kind]}"
                )
            continue
        empty_breaks_type = col.kind in (Kind.INT, Kind.BOOL) and validated_dtype(col) not in (
            NULLABLE_DTYPES.values()
        )
        if empty_breaks_type and column.null_count:
            row = pc.index(pc.is_null(column), True).as_py()
            found[name] = f"row {row + 1} is empty (the column is not nullable)"
        elif col.kind is Kind.INT and pa.types.is_floating(column.type):
            fractional = pc.not_equal(pc.floor(column), column)
            if pc.any(fractional).as_py():
                row = pc.index(fractional, True).as_py()
                found[name] = f"row {row + 1} holds {column[row].as_py()!r}, which is not an int"
    return found


def _first_failure(values: pa.Array, kind: Kind) -> int:
    """The position of the first value of ``values`` that does not parse as ``kind`` (some
    value does not): bisected, so only the failing path pays for it."""
    low, high = 0, len(values)
    while high - low > 1:
        middle = (low + high) // 2
        if _parse(kind, values.slice(low, middle - low)) is not None:
            low = middle
        else:
            high = middle
    return low
