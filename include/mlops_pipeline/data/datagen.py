"""Seeded demo data for any use case: its own generator makes the clean data, this engine
applies the scenarios that reproduce what goes wrong with real feeds and writes landing files.

A use case's generator is the ``generator.py`` of its folder, a module defining:

- ``population(rows: int, seed: int) -> DataFrame``: the stable traits of ``rows`` entities
  (the same seed and size give the same entities every partition).
- ``snapshot(population, start: date, seed: int, covariate_drift: bool, length: timedelta)
  -> DataFrame``: every entity's row of the partition ``[start, start + length)``: each
  contract column but the label, plus any latent columns (named ``_...``) the label needs.
  ``covariate_drift`` shifts the features' distributions, not what they mean.
- ``label(frame, rng: numpy Generator, concept_drift: bool) -> array``: each row's label,
  drawn with ``rng``. ``concept_drift`` changes the mechanism, not the features.

and, optionally, which columns the fault scenarios damage (defaults are chosen from the
contract): ``RENAMED = (column, new_name)``, ``DROPPED = column``, ``RETYPED = (column,
unit)`` (the numbers become text such as ``"12 unit"``), ``NULL_BURST = (columns...)``
(non-nullable ones), ``OUT_OF_RANGE_NUMBER = column`` (negated: a column whose values are
positive and whose ``min`` is at least 0), ``OUT_OF_RANGE_CATEGORY = (column, value)`` and
``RESENT_CHANGE = column`` (a number the re-sent rows of ``duplicates`` update).

The same seed always gives the same data, and any partition can be regenerated on its own.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_pipeline.data.contract import Kind
from mlops_pipeline.data.storage import landing_file
from mlops_pipeline.failures import SpecError, UserCodeError
from mlops_pipeline.usecases.loader import import_usecase_module
from mlops_pipeline.usecases.vocabulary import partition_seed

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings
    from mlops_pipeline.usecases.loader import UseCase

GENERATOR = "generator.py"


class Scenario(StrEnum):
    CLEAN = "clean"
    COVARIATE_DRIFT = "covariate_drift"
    CONCEPT_DRIFT = "concept_drift"
    SCHEMA_BREAK = "schema_break"
    NULL_BURST = "null_burst"
    OUT_OF_RANGE = "out_of_range"
    DUPLICATES = "duplicates"
    EMPTY = "empty"
    CORRUPT = "corrupt"


class SchemaBreak(StrEnum):
    RENAMED = "renamed"
    DROPPED = "dropped"
    RETYPED = "retyped"


# Shares of rows each row-level scenario damages. null_burst is far above the default 1%
# bad-row budget (the batch fails); out_of_range and duplicates stay below it (the batch passes
# and the damaged rows are quarantined).
NULL_BURST_FRACTION = 0.05
OUT_OF_RANGE_FRACTION = 0.004
DUPLICATE_FRACTION = 0.002


@dataclass(frozen=True)
class GeneratedDay:
    path: Path
    rows: int
    scenario: Scenario


@dataclass(frozen=True)
class Faults:
    """Which columns the fault scenarios of one use case damage."""

    renamed: tuple[str, str]
    dropped: str
    retyped: tuple[str, str]
    null_burst: tuple[str, ...]
    out_of_range_number: str
    out_of_range_category: tuple[str, str] | None
    resent_change: str

    def schema_break_column(self, kind: SchemaBreak | str) -> str:
        kind = SchemaBreak(kind)
        if kind is SchemaBreak.RENAMED:
            return self.renamed[0]
        if kind is SchemaBreak.DROPPED:
            return self.dropped
        return self.retyped[0]


def generator_module(usecase: UseCase) -> ModuleType:
    """The use case's ``generator.py`` (imported once per process, under a stable name)."""
    module_name = f"mlops_usecase_{usecase.name}_generator"
    path = usecase.folder / GENERATOR
    loaded = sys.modules.get(module_name)
    if loaded is not None and Path(loaded.__file__ or "") == path:
        return loaded
    if not path.exists():
        raise SpecError(f"{usecase.folder}: no {GENERATOR}, so no demo data can be generated")
    module = import_usecase_module(path, module_name)
    missing = [name for name in ("population", "snapshot", "label") if not hasattr(module, name)]
    if missing:
        del sys.modules[module_name]
        raise SpecError(f"{path}: the generator protocol needs {', '.join(missing)}")
    return module


def faults_of(usecase: UseCase) -> Faults:
    """The use case's declared fault columns, with defaults picked from its contract."""
    module = generator_module(usecase)
    columns = usecase.columns
    numbers = [c for c in usecase.numeric_features if not columns[c].nullable]
    floats = [c for c in numbers if columns[c].kind is Kind.FLOAT] or numbers
    ints = [c for c in numbers if columns[c].kind is Kind.INT] or numbers
    if not numbers:
        raise SpecError(f"{usecase.name}: the fault scenarios need a non-nullable number feature")
    positive = [c for c in floats if (low := columns[c].min) is not None and low >= 0]
    categories = [
        c for c in usecase.categorical_features if columns[c].values and not columns[c].nullable
    ]
    default_renamed = (floats[0], f"{floats[0]}_renamed")
    default_category = (categories[0], f"not_a_{categories[0]}") if categories else None
    faults = Faults(
        renamed=tuple(getattr(module, "RENAMED", default_renamed)),
        dropped=getattr(module, "DROPPED", usecase.feature_columns[-1]),
        retyped=tuple(getattr(module, "RETYPED", (ints[0], "units"))),
        null_burst=tuple(getattr(module, "NULL_BURST", floats[:2])),
        out_of_range_number=getattr(module, "OUT_OF_RANGE_NUMBER", (positive or floats)[0]),
        out_of_range_category=getattr(module, "OUT_OF_RANGE_CATEGORY", default_category),
        resent_change=getattr(module, "RESENT_CHANGE", floats[-1]),
    )
    named = [
        faults.renamed[0],
        faults.dropped,
        faults.retyped[0],
        *faults.null_burst,
        faults.out_of_range_number,
        faults.resent_change,
    ]
    if faults.out_of_range_category:
        named.append(faults.out_of_range_category[0])
    unknown = sorted({c for c in named if c not in columns})
    if unknown:
        raise SpecError(f"{usecase.folder / GENERATOR}: fault columns {unknown} are not declared")
    return faults


def _usecase(source: Settings | UseCase) -> UseCase:
    from mlops_pipeline.config import Settings

    return source.spec if isinstance(source, Settings) else source


def generate_frame(
    source: Settings | UseCase,
    day: dt.date,
    rows: int = 20_000,
    seed: int = 7,
    scenario: Scenario | str = Scenario.CLEAN,
    schema_break: SchemaBreak | str | None = None,
) -> pd.DataFrame:
    """The rows of the partition holding ``day`` for the use case of ``source`` (settings or a
    use case), with the scenario applied (``corrupt`` is a file-level fault and leaves the
    frame intact). Columns come in the contract's order."""
    usecase = _usecase(source)
    scenario = Scenario(scenario)
    generator = generator_module(usecase)
    start = usecase.cadence.partition_of(day)
    population = generator.population(rows, seed)
    frame = generator.snapshot(
        population, start, seed, scenario is Scenario.COVARIATE_DRIFT, usecase.cadence.length
    )
    rng = np.random.default_rng([seed, partition_seed(start), 1])
    labels = np.asarray(generator.label(frame, rng, scenario is Scenario.CONCEPT_DRIFT))
    frame[usecase.label] = labels.astype(_LABEL_DTYPES[usecase.column(usecase.label).kind])
    missing = [c for c in usecase.column_names if c not in frame.columns]
    if missing:
        raise UserCodeError(f"{usecase.folder / GENERATOR}: snapshot lacks columns {missing}")
    frame = frame[list(usecase.column_names)]
    return _apply_scenario(frame, scenario, rng, schema_break, faults_of(usecase))


_LABEL_DTYPES = {Kind.INT: np.int64, Kind.FLOAT: np.float64, Kind.BOOL: np.bool_}


def _sample(rng: np.random.Generator, rows: int, fraction: float) -> np.ndarray:
    count = max(1, round(rows * fraction)) if rows else 0
    return np.sort(rng.choice(rows, size=count, replace=False))


def _apply_scenario(
    frame: pd.DataFrame,
    scenario: Scenario,
    rng: np.random.Generator,
    schema_break: SchemaBreak | str | None,
    faults: Faults,
) -> pd.DataFrame:
    rows = len(frame)
    if scenario is Scenario.EMPTY:
        return frame.iloc[0:0]
    if scenario is Scenario.SCHEMA_BREAK:
        kind = SchemaBreak(schema_break or SchemaBreak.RENAMED)
        if kind is SchemaBreak.RENAMED:
            return frame.rename(columns={faults.renamed[0]: faults.renamed[1]})
        if kind is SchemaBreak.DROPPED:
            return frame.drop(columns=faults.dropped)
        name, unit = faults.retyped
        frame[name] = frame[name].astype(str) + f" {unit}"
        return frame
    if scenario is Scenario.NULL_BURST:
        hit = _sample(rng, rows, NULL_BURST_FRACTION)
        frame.loc[hit, list(faults.null_burst)] = np.nan
        return frame
    if scenario is Scenario.OUT_OF_RANGE:
        hit = _sample(rng, rows, OUT_OF_RANGE_FRACTION)
        half = len(hit) // 2 if faults.out_of_range_category else len(hit)
        number = faults.out_of_range_number
        frame.loc[hit[:half], number] = -frame.loc[hit[:half], number]
        if faults.out_of_range_category:
            name, value = faults.out_of_range_category
            frame.loc[hit[half:], name] = value
        return frame
    if scenario is Scenario.DUPLICATES:
        # A re-sent slice of the feed: same keys, values updated in between.
        hit = _sample(rng, rows, DUPLICATE_FRACTION)
        resent = frame.iloc[hit].copy()
        resent[faults.resent_change] = resent[faults.resent_change] + 1.0
        return pd.concat([frame, resent], ignore_index=True)
    return frame


def write_landing_file(
    frame: pd.DataFrame, path: Path, timestamp: str, corrupt: bool = False
) -> None:
    """Write atomically so a reader never sees half a file (unless corruption is the point).
    CSV timestamps (the ``timestamp`` column) are written as ISO 8601 UTC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        out = frame.copy()
        out[timestamp] = out[timestamp].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.to_csv(tmp, index=False)
    if corrupt:
        payload = tmp.read_bytes()
        # Cut mid-row and append binary noise: what a broken transfer leaves behind.
        tmp.write_bytes(payload[: len(payload) // 2] + b"\x00\xff\xfe garbage,,\x89PNG\r\n")
    os.replace(tmp, path)


def generate_day(
    settings: Settings,
    day: dt.date,
    rows: int = 20_000,
    seed: int = 7,
    scenario: Scenario | str = Scenario.CLEAN,
    schema_break: SchemaBreak | str | None = None,
    file_format: str = "csv",
) -> GeneratedDay:
    """Generate the partition holding ``day`` (a weekly use case's: its week) and write it into
    its landing partition."""
    scenario = Scenario(scenario)
    usecase = settings.spec
    frame = generate_frame(usecase, day, rows, seed, scenario, schema_break)
    path = landing_file(settings, day, file_format)
    write_landing_file(frame, path, usecase.timestamp, corrupt=scenario is Scenario.CORRUPT)
    return GeneratedDay(path=path, rows=len(frame), scenario=scenario)
