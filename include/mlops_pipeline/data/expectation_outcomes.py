"""What a validation run found, reduced to what ingestion acts on.

Great Expectations' result is large and shaped for its renderer; ingestion needs per
expectation its level and success, and per row the names of the row expectations it failed
(to quarantine it with them). The platform's own checks (the entity-duplicates rule) report
in the same shape, so the verdict treats both alike.

Expectations come in two levels. *Batch* expectations (schema, types, row count) judge the file
as a whole: if one fails, nothing in the batch can be trusted. *Row* expectations (nulls,
ranges, value sets, uniqueness, timestamps inside the partition's interval) point at individual
rows, which are quarantined with the names of the expectations they failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BATCH = "batch"
ROW = "row"


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


def read_outcome(validation_id: str, suite_result: Any, identifier: Any) -> ValidationOutcome:
    """``suite_result`` (Great Expectations' result of the suite's run) as an outcome."""
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
                observed=None if observed is None else shortened(observed),
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


def shortened(value: Any, limit: int = 300) -> str:
    """``value``'s text, cut to ``limit`` characters: a report names a value, it does not
    carry a whole column of them."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure_mask(rows: int, row_failures: dict[int, list[str]]) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    if row_failures:
        mask[np.fromiter(row_failures.keys(), dtype=np.int64)] = True
    return mask
