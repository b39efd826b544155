"""The Great Expectations suite of a use case's batch, derived from its declared contract.

One suite per dataset (``<dataset>_<cadence>``), built from ``usecase.yaml``'s columns: the
column set, each column's type, and per row its nulls (unless the column is ``nullable``),
range and value set.

Expectations come in two levels. *Batch* expectations (schema, types, row count) judge the file
as a whole: if one fails, nothing in the batch can be trusted. *Row* expectations (nulls,
ranges, value sets, uniqueness, timestamps inside the partition's interval) point at individual
rows, which are quarantined with the names of the expectations they failed.

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

Entity duplicates are judged among the rows that pass every other row expectation, after
Great Expectations, by the platform (so they are in the stored result's ``platform_checks``,
not in its ``results`` nor in Data Docs). An exact copy of an earlier row is quarantined
(``row_is_not_a_copy``), the first kept. Other rows of one entity follow the use case's
``entity.duplicates``: ``keep_latest`` (the default: a partition holds each entity's state
once, and a re-sent or later snapshot describes it best) quarantines all but the newest by
the timestamp, at one timestamp the last of the file (``entity_row_is_latest(<key>)``);
``reject`` quarantines every row after the entity's first (``entity_row_is_first(<key>)``).

Re-runs: the stored validation result (``validations_dir``) of the same landed file is
byte-identical, in the same or a re-created Great Expectations project. What Great
Expectations varies is pinned or stripped there: each expectation's id (random when its suite
is stored) is derived from the suite's name and version and the expectation's position and
name; ``meta.checkpoint_id`` and ``meta.validation_id`` (random ids of the project's objects)
are dropped; ``meta.batch_markers.ge_load_time`` (the wall clock) is dropped, in Great
Expectations' own store too, so Data Docs do not show it. ``run_time`` and
``validation_time`` are the partition's start. Data Docs pages are rewritten after rendering
so they are byte-identical too: the logo's wall-clock cache-buster (``?d=``) is removed and
the random ids of collapsible sections become ids derived from their order on the page.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlops_pipeline.data.contract import Kind
from mlops_pipeline.usecases.vocabulary import Duplicates

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings
    from mlops_pipeline.usecases.spec import ColumnSpec, UseCaseSpec

# Bump when the expectations change: it is part of every validation id and manifest.
# 2: null markers, entity duplicates judged by ``entity.duplicates`` (was: (key, timestamp)
# unique, quarantining the original with its copy), deterministic expectation ids.
SUITE_VERSION = 2
BATCH = "batch"
ROW = "row"

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

# result_format for row-level outcomes: every failing row index, but not the failing values
# (they are in the quarantine file) nor GX's pandas query string (a copy of every index).
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 20,
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpectationOutcome:
    name: str
    level: str
    success: bool
    unexpected_count: int | None = None
    observed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level,
            "success": self.success,
            "unexpected_count": self.unexpected_count,
            "observed": self.observed,
        }


@dataclass
class ValidationOutcome:
    """What one validation run found, reduced to what ingestion needs to act on."""

    validation_id: str
    expectations: list[ExpectationOutcome]
    # Row position -> names of the row expectations it failed.
    row_failures: dict[int, list[str]] = field(default_factory=dict)
    result_json: dict[str, Any] = field(default_factory=dict)
    gx_result: Any = None
    result_identifier: Any = None

    @property
    def failed_batch_expectations(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.level == BATCH and not e.success]

    @property
    def failed_row_expectations(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.level == ROW and not e.success]


def expectation_name(expectation_type: str, kwargs: dict[str, Any]) -> str:
    target = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
    return f"{expectation_type}({target})" if target else expectation_type


def validated_dtype(column: ColumnSpec) -> str:
    """The dtype a column is validated as (and ``conform_types`` conforms it to)."""
    if (column.nullable or column.null_markers) and column.kind in NULLABLE_DTYPES:
        return NULLABLE_DTYPES[column.kind]
    return VALIDATED_DTYPES[column.kind]


def checks_nulls(column: ColumnSpec) -> bool:
    """Whether the suite fails the rows where the column is null."""
    if column.nullable:
        return False
    # A non-nullable int64 or bool column cannot hold a null once its type is confirmed (and
    # each column-map expectation costs a copy of the frame in Great Expectations); one that
    # declares markers is validated as a nullable dtype, so its nulls are judged row by row.
    return column.kind not in (Kind.INT, Kind.BOOL) or bool(column.null_markers)


# The namespace of the ids the stored results and pages get instead of Great Expectations'
# random ones.
_STABLE_IDS = uuid.UUID("5f0c7f3e-2a51-4c55-9a8e-1d0b7e0f6a11")


def suite_name(spec: UseCaseSpec) -> str:
    """The dataset's suite, e.g. ``<dataset>_daily``: one per dataset and cadence."""
    return f"{spec.dataset}_{spec.cadence.value}"


def build_suite(spec: UseCaseSpec, min_rows: int, max_rows: int) -> Any:
    """The suite for one batch of ``spec``'s dataset. The partition's bounds are suite
    parameters (``interval_start``, ``interval_end``) supplied at run time, so one suite serves
    every partition."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    batch = {"level": BATCH}
    row = {"level": ROW}
    expectations: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(spec.column_names), exact_match=True, meta=batch
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=min_rows, max_value=max_rows, meta=batch),
    ]
    for name, col in spec.columns.items():
        expectations.append(
            gxe.ExpectColumnTypeToBe(column=name, type_=validated_dtype(col), meta=batch)
        )
        if checks_nulls(col):
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=name, meta=row))
        # Column-map expectations skip nulls: a nullable column's nulls pass the rest.
        if col.values is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(col.values), meta=row)
            )
        if col.min is not None or col.max is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=name, min_value=col.min, max_value=col.max, meta=row
                )
            )
    expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column=spec.timestamp,
            min_value={"$PARAMETER": "interval_start"},
            max_value={"$PARAMETER": "interval_end"},
            strict_max=True,
            meta=row,
        )
    )
    return gx.ExpectationSuite(
        name=suite_name(spec), expectations=expectations, meta={"suite_version": SUITE_VERSION}
    )


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
                    f"row {row + 1} holds {_short(values[row].as_py(), 60)!r}, which is not "
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


def entity_duplicates(
    spec: UseCaseSpec, frame: pd.DataFrame, failing: Collection[int] = ()
) -> tuple[list[ExpectationOutcome], dict[int, list[str]]]:
    """The rows the entity-duplicates rule quarantines (see the module docstring), judged
    among the rows not in ``failing``: the checks' outcomes, and row position -> names."""
    key, timestamp = spec.entity.key, spec.timestamp
    copy_name = "row_is_not_a_copy"
    rule = spec.entity.duplicates
    entity_name = (
        f"entity_row_is_latest({key})"
        if rule is Duplicates.KEEP_LATEST
        else f"entity_row_is_first({key})"
    )
    copies: list[int] = []
    extra: list[int] = []
    if key in frame.columns and timestamp in frame.columns and len(frame):
        passing = np.ones(len(frame), dtype=bool)
        if failing:
            passing[np.fromiter(failing, dtype=np.int64)] = False
        positions = np.flatnonzero(passing)
        keys = frame[key] if len(positions) == len(frame) else frame[key].iloc[positions]
        # Most partitions hold each entity once: only the rows of repeated keys are looked at
        # further (and copied: the whole frame may be large).
        rows = frame.iloc[positions[keys.duplicated(keep=False).to_numpy()]]
        if len(rows):
            copy_mask = rows.duplicated(keep="first").to_numpy()
            copies = [int(i) for i in rows.index[copy_mask]]
            rest = rows.loc[~copy_mask]
            if rule is Duplicates.KEEP_LATEST:
                # Stable, and the rows are in file order: at one timestamp the last row wins.
                ordered = rest.sort_values([key, timestamp], kind="stable")
                older = ordered.duplicated(subset=[key], keep="last").to_numpy()
                extra = sorted(int(i) for i in ordered.index[older])
            else:
                later = rest.duplicated(subset=[key], keep="first").to_numpy()
                extra = [int(i) for i in rest.index[later]]
    outcomes = [
        ExpectationOutcome(copy_name, ROW, not copies, unexpected_count=len(copies)),
        ExpectationOutcome(entity_name, ROW, not extra, unexpected_count=len(extra)),
    ]
    failures: dict[int, list[str]] = {}
    for quarantined, name in ((copies, copy_name), (extra, entity_name)):
        for position in quarantined:
            failures.setdefault(position, []).append(name)
    return outcomes, failures


class GxProject:
    """The file-backed Great Expectations project under ``MLOPS_HOME/gx``: it keeps every
    validation result and renders the Data Docs site under ``MLOPS_HOME/reports/data_docs``.
    Every dataset has its own datasource, asset, suite and checkpoint, named after it, so the
    use cases share one project without overwriting each other's."""

    BATCH_DEFINITION = "whole_partition"
    SITE = "mlops_site"

    def __init__(self, settings: Settings) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.settings = settings
        self.spec = settings.spec
        self.suite_name = suite_name(self.spec)
        self.datasource = f"{self.spec.dataset}_landing"
        self.asset = f"{self.suite_name}_frame"
        settings.gx_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.context = gx.get_context(mode="file", project_root_dir=str(settings.gx_dir))
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        if self.SITE not in (self.context.get_site_names() or []):
            self.context.add_data_docs_site(
                self.SITE,
                {
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(settings.data_docs_dir),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )

    def _validation_definition(self) -> Any:
        import great_expectations as gx

        datasource = self.context.data_sources.add_or_update_pandas(self.datasource)
        asset = datasource.add_dataframe_asset(self.asset)
        batch_definition = asset.add_batch_definition_whole_dataframe(self.BATCH_DEFINITION)
        suite = self.context.suites.add_or_update(
            build_suite(self.spec, self.settings.min_batch_rows, self.settings.max_batch_rows)
        )
        return self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(
                name=f"{self.suite_name}_v{SUITE_VERSION}", data=batch_definition, suite=suite
            )
        )

    def validate(
        self,
        frame: pd.DataFrame,
        validation_id: str,
        interval_start: dt.datetime,
        interval_end: dt.datetime,
    ) -> ValidationOutcome:
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier

        definition = self._validation_definition()
        checkpoint = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"{self.suite_name}_checkpoint",
                validation_definitions=[definition],
                actions=[],
                result_format=RESULT_FORMAT,
            )
        )
        # run_time is the interval start, not "now": a re-run of a partition stores its result under
        # the same key instead of piling up copies.
        run_id = RunIdentifier(run_name=validation_id, run_time=interval_start)
        result = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters={
                "interval_start": pd.Timestamp(interval_start),
                "interval_end": pd.Timestamp(interval_end),
            },
            run_id=run_id,
        )
        ((identifier, suite_result),) = result.run_results.items()
        markers = (suite_result.meta or {}).get("batch_markers") or {}
        if markers.pop("ge_load_time", None) is not None:
            # The wall clock of the run: the stored result (and Data Docs) would differ on
            # every re-run of the same file.
            self.context.validation_results_store.set(identifier, suite_result)
        outcome = _outcome(validation_id, suite_result, identifier)
        checks, failures = entity_duplicates(self.spec, frame, outcome.row_failures.keys())
        outcome.expectations += checks
        for position, names in failures.items():
            outcome.row_failures.setdefault(position, []).extend(names)
        _make_stable(outcome.result_json)
        outcome.result_json["platform_checks"] = [
            {
                **check.to_dict(),
                "unexpected_index_list": sorted(
                    position for position, names in failures.items() if check.name in names
                ),
            }
            for check in checks
        ]
        return outcome

    def render_data_docs(self, outcome: ValidationOutcome) -> Path:
        """Render the result's page and refresh the index; returns the page's path."""
        urls = self.context.build_data_docs(
            site_names=[self.SITE], resource_identifiers=[outcome.result_identifier]
        )
        index = Path(urls[self.SITE].removeprefix("file://"))
        page = self.context.get_docs_sites_urls(
            resource_identifier=outcome.result_identifier, site_name=self.SITE
        )
        site_url = page[0].get("site_url") if page else None
        path = Path(site_url.removeprefix("file://")) if site_url else index
        for written in {index, path}:
            if written.exists():
                written.write_text(_stable_html(written.read_text()))
        return path


# What Great Expectations' renderer varies from one rendering of the same result to the next:
# the logo's cache-buster (the wall clock) and the ids of collapsible sections (uuid4).
_CACHE_BUSTER = re.compile(r"\?d=\d{8}T\d{6}\.\d+Z&")
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _stable_html(html: str) -> str:
    """The page with its volatile parts made stable: each uuid becomes one derived from its
    order of appearance (so links between sections still match)."""
    html = _CACHE_BUSTER.sub("?", html)
    stable: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if found not in stable:
            stable[found] = str(uuid.uuid5(_STABLE_IDS, f"html/{len(stable)}"))
        return stable[found]

    return _UUID4.sub(replace, html)


def _outcome(validation_id: str, suite_result: Any, identifier: Any) -> ValidationOutcome:
    outcomes: list[ExpectationOutcome] = []
    row_failures: dict[int, list[str]] = {}
    for item in suite_result.results:
        config = item.expectation_config
        level = (config.meta or {}).get("level", BATCH)
        name = expectation_name(config.type, config.kwargs)
        result = item.result or {}
        observed = result.get("observed_value")
        mismatched = (result.get("details") or {}).get("mismatched")
        if mismatched:
            # Say which columns are missing or unexpected, not the whole observed list.
            observed = ", ".join(f"{k}: {sorted(v)}" for k, v in sorted(mismatched.items()) if v)
        if item.exception_info and item.exception_info.get("raised_exception"):
            message = str(item.exception_info.get("exception_message"))
            observed = "column missing" if "does not exist" in message else message
        outcomes.append(
            ExpectationOutcome(
                name=name,
                level=level,
                success=bool(item.success),
                unexpected_count=result.get("unexpected_count"),
                observed=None if observed is None else _short(observed),
            )
        )
        if level == ROW and not item.success:
            for position in result.get("unexpected_index_list") or []:
                row_failures.setdefault(int(position), []).append(name)
    return ValidationOutcome(
        validation_id=validation_id,
        expectations=outcomes,
        row_failures=row_failures,
        result_json=suite_result.to_json_dict(),
        gx_result=suite_result,
        result_identifier=identifier,
    )


def _make_stable(result_json: dict[str, Any]) -> None:
    """Pin or strip what Great Expectations draws at random in a result: each expectation's id
    (drawn when its suite is first stored, so a new project or the first run differ) becomes
    one derived from the suite, its version, position and name; the ids of the project's
    checkpoint and validation definition (drawn when the project is created) are dropped."""
    suite = result_json.get("suite_name", "")
    for position, item in enumerate(result_json.get("results") or []):
        config = item.get("expectation_config") or {}
        label = expectation_name(str(config.get("type")), config.get("kwargs") or {})
        config["id"] = str(uuid.uuid5(_STABLE_IDS, f"{suite}/v{SUITE_VERSION}/{position}/{label}"))
    meta = result_json.get("meta") or {}
    for drawn in ("checkpoint_id", "validation_id"):
        meta.pop(drawn, None)


def _short(value: Any, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure_mask(rows: int, row_failures: dict[int, list[str]]) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    if row_failures:
        mask[np.fromiter(row_failures.keys(), dtype=np.int64)] = True
    return mask
