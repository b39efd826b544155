"""The Great Expectations suite of a use case's batch, derived from its declared contract, and
the project that runs it.

One suite per dataset (``<dataset>_<cadence>``), built from ``usecase.yaml``'s columns: the
column set, each column's type, and per row its nulls (unless the column is ``nullable``),
range and value set. Expectations are batch or row level (``expectation_outcomes``).

The suite runs on the frame ``conform`` types from the landed table (null markers included);
the entity-duplicates rule (``duplicates``) is judged after it, among the rows it passed; the
stored result and the Data Docs pages are made byte-stable on a re-run (``stable_results``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_pipeline.data.conform import validated_dtype
from mlops_pipeline.data.contract import Kind
from mlops_pipeline.data.data_docs_assets import install_assets, offline_html
from mlops_pipeline.data.duplicates import entity_duplicates
from mlops_pipeline.data.expectation_outcomes import (
    BATCH,
    ROW,
    ValidationOutcome,
    read_outcome,
)
from mlops_pipeline.data.stable_results import (
    drop_load_time,
    index_with_verdicts,
    make_result_stable,
    page_with_verdict,
    stable_html,
)

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings
    from mlops_pipeline.usecases.spec import ColumnSpec, UseCaseSpec

# Bump when the expectations change: it is part of every validation id and manifest.
# 2: null markers, entity duplicates judged by ``entity.duplicates`` (was: (key, timestamp)
# unique, quarantining the original with its copy), deterministic expectation ids.
SUITE_VERSION = 2

# result_format for row-level outcomes: every failing row index, but not the failing values
# (they are in the quarantine file) nor GX's pandas query string (a copy of every index).
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 20,
}

log = logging.getLogger(__name__)


def checks_nulls(column: ColumnSpec) -> bool:
    """Whether the suite fails the rows where the column is null."""
    if column.nullable:
        return False
    # A non-nullable int64 or bool column cannot hold a null once its type is confirmed (and
    # each column-map expectation costs a copy of the frame in Great Expectations); one that
    # declares markers is validated as a nullable dtype, so its nulls are judged row by row.
    return column.kind not in (Kind.INT, Kind.BOOL) or bool(column.null_markers)


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
        if drop_load_time(suite_result):
            self.context.validation_results_store.set(identifier, suite_result)
        outcome = read_outcome(validation_id, suite_result, identifier)
        checks, failures = entity_duplicates(self.spec, frame, outcome.row_failures.keys())
        outcome.expectations += checks
        for position, names in failures.items():
            outcome.row_failures.setdefault(position, []).extend(names)
        make_result_stable(outcome.result_json, SUITE_VERSION)
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

    def render_data_docs(self, outcome: ValidationOutcome, status: str, message: str) -> Path:
        """Render the result's page, its suite's page and the index, offline and byte-stable,
        each status the platform's verdict (``status``, ``message``: the ingestion report's);
        returns the result page's path."""
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        site = self.settings.data_docs_dir
        verdicts_path = self.settings.gx_dir / "platform_verdicts.json"
        verdicts = json.loads(verdicts_path.read_text()) if verdicts_path.exists() else {}
        verdicts[outcome.validation_id] = status
        verdicts_path.write_text(json.dumps(verdicts, indent=1, sort_keys=True) + "\n")
        urls = self.context.build_data_docs(
            site_names=[self.SITE],
            resource_identifiers=[
                outcome.result_identifier,
                ExpectationSuiteIdentifier(name=self.suite_name),
            ],
        )
        index = Path(urls[self.SITE].removeprefix("file://"))
        page = self.context.get_docs_sites_urls(
            resource_identifier=outcome.result_identifier, site_name=self.SITE
        )
        site_url = page[0].get("site_url") if page else None
        path = Path(site_url.removeprefix("file://")) if site_url else index
        install_assets(site)
        suite_page = site / "expectations" / f"{self.suite_name}.html"
        for written in (index, path, suite_page):
            if not written.exists():
                continue
            html = offline_html(
                stable_html(written.read_text()), os.path.relpath(site, written.parent)
            )
            if written == path:
                html = page_with_verdict(html, status, message)
            elif written == index:
                html = index_with_verdicts(html, verdicts)
            written.write_text(html)
        return path
