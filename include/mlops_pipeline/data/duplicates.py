"""The entity-duplicates rule: how many rows of one entity a partition keeps.

Entity duplicates are judged among the rows that pass every other row expectation, after
Great Expectations, by the platform (so they are in the stored result's ``platform_checks``,
not in its ``results`` nor in Data Docs): Great Expectations' uniqueness expectations fail
every row of a repeated key, the one to keep included, while which one to keep depends on the
use case's rule and the order of the file. An exact copy of an earlier row is quarantined
(``row_is_not_a_copy``), the first kept. Other rows of one entity follow the use case's
``entity.duplicates``: ``keep_latest`` (the default: a partition holds each entity's state
once, and a re-sent or later snapshot describes it best) quarantines all but the newest by
the timestamp, at one timestamp the last of the file (``entity_row_is_latest(<key>)``);
``reject`` quarantines every row after the entity's first (``entity_row_is_first(<key>)``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_pipeline.data.expectation_outcomes import ROW, ExpectationOutcome
from mlops_pipeline.usecases.vocabulary import Duplicates

if TYPE_CHECKING:
    from mlops_pipeline.usecases.spec import UseCaseSpec


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
