"""The declaration drafted from a sample: identity, columns, one feature view, serving fields."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mlops_pipeline.usecases.scaffold import ScaffoldError
from mlops_pipeline.usecases.scaffold.inference import infer_column, infer_task, require_column
from mlops_pipeline.usecases.spec import NAME_PATTERN, Cadence, Task

if TYPE_CHECKING:
    import pyarrow as pa

# A feature is served while its latest value is at most this many partitions old.
TTL_PARTITIONS = 2


def draft_declaration(
    table: pa.Table,
    name: str,
    entity_key: str,
    timestamp: str,
    label: str,
    task: Task | None = None,
    cadence: Cadence = Cadence.DAILY,
    dataset: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The declaration drafted from ``table`` (plain data, in the file's order) and notes on
    what the user should review."""
    if not re.match(NAME_PATTERN, name):
        raise ScaffoldError(
            f"name: {name!r} must be lower-case letters, digits and _ (starting with a letter, "
            "at most 40 characters)"
        )
    given = {"--entity": entity_key, "--timestamp": timestamp, "--label": label}
    for option, column in given.items():
        require_column(table, column, option)
    if len(set(given.values())) != 3:
        raise ScaffoldError("--entity, --timestamp and --label must name three different columns")
    task = task or infer_task(table, label)
    notes: list[str] = []
    columns: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for column_name in table.column_names:
        try:
            columns[column_name] = infer_column(
                table, column_name, entity_key, timestamp, label, task, notes
            )
        except ScaffoldError as exc:
            problems.append(str(exc))
    if problems:
        raise ScaffoldError("; ".join(problems))
    features = [c for c in table.column_names if c not in given.values()]
    if not features:
        raise ScaffoldError("the sample has no column besides the entity key, timestamp, label")
    slug = _slug(label)
    entity_name = _slug(entity_key.removesuffix("_id").removesuffix("_key")) or "entity"
    if entity_name == _slug(entity_key):
        entity_name = f"{entity_name}_entity"
    serving: dict[str, Any]
    if task is Task.BINARY_CLASSIFICATION:
        serving = {
            "score_field": _free(f"{slug}_probability", columns),
            "decision_field": _free(f"predicted_{slug}", columns),
        }
    else:
        serving = {"score_field": _free(f"predicted_{slug}", columns)}
    ttl = cadence.length * TTL_PARTITIONS
    ttl_text = f"P{ttl.days}D" if ttl.days else f"PT{ttl.seconds // 3600}H"
    declaration: dict[str, Any] = {
        "name": name,
        "description": f"Predicts {label} per {entity_name}. TODO: what the model is for, who "
        "uses it, and what it must not be used for.",
        "owner": "ml-platform",
        "task": task.value,
        "entity": {"name": entity_name, "key": entity_key},
        "timestamp": timestamp,
        "label": label,
        "dataset": dataset or name,
        "cadence": cadence.value,
        "columns": columns,
        "features": {
            "views": {
                f"{name}_features": {"ttl": ttl_text, "features": features},
            },
            "service": f"{name}_v1",
            "service_description": f"Features of the {name} model, version 1.",
        },
        "segments": [],
        "protected_attributes": [],
        "serving": serving,
    }
    return declaration, notes


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    if slug and not slug[0].isalpha():
        slug = f"c_{slug}"
    return slug[:40]


def _free(field_name: str, columns: dict[str, Any]) -> str:
    return field_name if field_name not in columns else f"{field_name}_score"
