"""The data contract of a use case's landing dataset, as its declaration defines it.

One place says what a valid row is (``usecase.yaml``'s ``columns``); the Great Expectations
suite, the lake's schema, the Feast fields and the serving schema are all derived from it.
"""

from __future__ import annotations

from mlops_pipeline.usecases.spec import ColumnSpec, Kind

__all__ = ["PANDAS_TYPES", "ColumnSpec", "Kind"]

# pandas dtype names accepted for each kind, as Great Expectations reports them. Integers are
# valid floats: a CSV day whose charges happen to be whole numbers must not break the schema.
PANDAS_TYPES: dict[Kind, tuple[str, ...]] = {
    Kind.INT: ("int64", "int32", "Int64", "Int32"),
    Kind.FLOAT: ("float64", "float32", "Float64", "int64", "int32", "Int64"),
    Kind.CATEGORY: ("object", "string", "str"),
    Kind.BOOL: ("bool", "boolean"),
    Kind.TIMESTAMP: (
        "datetime64[ns, UTC]",
        "datetime64[us, UTC]",
        "datetime64[ms, UTC]",
        "datetime64[s, UTC]",
    ),
}
