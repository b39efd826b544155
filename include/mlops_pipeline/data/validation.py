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
type (a whole-number column with holes is read as float), which rejects the batch naming it.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops_pipeline.data.contract import Kind

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings
    from mlops_pipeline.usecases.spec import ColumnSpec, UseCaseSpec

# Bump when the expectations change: it is part of every validation id and manifest.
SUITE_VERSION = 1
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
    if column.nullable and column.kind in NULLABLE_DTYPES:
        return NULLABLE_DTYPES[column.kind]
    return VALIDATED_DTYPES[column.kind]


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
        # A non-nullable int64 or bool column cannot hold a null once its type is confirmed
        # (and each column-map expectation costs a copy of the frame in Great Expectations).
        if not col.nullable and col.kind not in (Kind.INT, Kind.BOOL):
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
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(
            column=spec.timestamp,
            min_value={"$PARAMETER": "interval_start"},
            max_value={"$PARAMETER": "interval_end"},
            strict_max=True,
            meta=row,
        ),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=[spec.entity.key, spec.timestamp], meta=row
        ),
    ]
    return gx.ExpectationSuite(
        name=suite_name(spec), expectations=expectations, meta={"suite_version": SUITE_VERSION}
    )


_NULLABLE_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def conform_types(spec: UseCaseSpec, table: pa.Table) -> pd.DataFrame:
    """The frame to validate, from the table as read.

    Widens only what is lossless to widen, so type expectations judge meaning, not spelling:
    whole numbers read as int in a float column become float, any UTC timestamp unit becomes
    ns, text in a categorical column becomes ``category``, a nullable int or bool column
    becomes pandas' nullable Int64 or boolean (so its nulls stay nulls, not a float column).
    Anything else (a tz-naive timestamp, text in a number column) is left for the suite to
    reject.

    It works on the Arrow table so pandas receives consolidated blocks in one conversion: Great
    Expectations copies the whole frame for every column-map expectation, and that copy is only
    cheap on a consolidated frame whose categories are small codes, not Python strings.
    """
    nullable: dict[str, pa.ChunkedArray] = {}
    for name, col in spec.columns.items():
        if name not in table.column_names:
            continue
        index = table.schema.get_field_index(name)
        arrow_type = table.schema.field(index).type
        if col.nullable and col.kind in (Kind.INT, Kind.BOOL):
            target = pa.int64() if col.kind is Kind.INT else pa.bool_()
            if pa.types.is_null(arrow_type):  # a column of nulls only
                nullable[name] = pa.chunked_array([pa.nulls(len(table), target)])
            elif (col.kind is Kind.INT and pa.types.is_integer(arrow_type)) or (
                col.kind is Kind.BOOL and pa.types.is_boolean(arrow_type)
            ):
                nullable[name] = table.column(index).cast(target)
            continue
        if col.kind is Kind.FLOAT and pa.types.is_integer(arrow_type):
            column = table.column(index).cast(pa.float64())
        elif (
            col.kind is Kind.TIMESTAMP
            and pa.types.is_timestamp(arrow_type)
            and arrow_type.tz in ("UTC", "+00:00")
        ):
            column = table.column(index).cast(pa.timestamp("ns", tz="UTC"))
        elif col.kind is Kind.CATEGORY and (
            pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
        ):
            column = table.column(index).dictionary_encode()
        elif col.kind is Kind.FLOAT and pa.types.is_null(arrow_type):  # nulls only
            column = pa.chunked_array([pa.nulls(len(table), pa.float64())])
        elif col.kind is Kind.CATEGORY and pa.types.is_null(arrow_type):
            column = pa.chunked_array([pa.nulls(len(table), pa.string())]).dictionary_encode()
        else:
            continue
        table = table.set_column(index, name, column)
    frame = table.to_pandas()
    for name, column in nullable.items():
        frame[name] = column.to_pandas(types_mapper=_NULLABLE_PANDAS_TYPES.get).array
    return frame


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
        return _outcome(validation_id, suite_result, identifier)

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
        if site_url:
            return Path(site_url.removeprefix("file://"))
        return index


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


def _short(value: Any, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure_mask(rows: int, row_failures: dict[int, list[str]]) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    if row_failures:
        mask[np.fromiter(row_failures.keys(), dtype=np.int64)] = True
    return mask
