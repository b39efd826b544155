"""The declaration ``new-usecase`` writes, commented (its DAG file: ``orchestration.dag_file``)."""

from __future__ import annotations

from typing import Any

from mlops_pipeline.usecases.spec import (
    DEFAULT_GATES,
    PRIMARY_METRIC,
    DriftSpec,
    EntitySpec,
    GatesSpec,
    Task,
    TrainingSpec,
)


def render_declaration(
    declaration: dict[str, Any], source: str, rows: int, candidates: list[str]
) -> str:
    """The YAML text: the drafted fields, then the defaults that apply, commented out."""
    import yaml

    task = Task(declaration["task"])

    def dump(part: dict[str, Any]) -> str:
        # Block style for the top level, flow style for the innermost mappings and lists.
        return "".join(
            yaml.safe_dump(
                {key: value},
                sort_keys=False,
                default_flow_style=None if isinstance(value, dict | list) else False,
                width=100,
                allow_unicode=True,
            )
            for key, value in part.items()
        )

    def commented(part: dict[str, Any]) -> str:
        return "".join(f"# {line}\n" for line in dump(part).splitlines())

    def columns(part: dict[str, dict[str, Any]]) -> str:
        # One line per column, as a person writes them.
        lines = ["columns:\n"]
        for column, spec in part.items():
            flow = yaml.safe_dump(
                {column: spec}, sort_keys=False, default_flow_style=True, width=10**6
            )
            lines.append(f"  {flow.strip()[1:-1]}\n")
        return "".join(lines)

    name = declaration["name"]
    head = {k: declaration[k] for k in ("name", "description", "owner", "task")}
    identity = {k: declaration[k] for k in ("entity", "timestamp", "label", "dataset", "cadence")}
    gates = GatesSpec().model_dump(exclude={"metrics", "primary_metric"})
    segments_hint = f", e.g. {', '.join(candidates)}" if candidates else ""
    sections = [
        f"# {name}: drafted by `mlops-pipeline new-usecase` from {source} ({rows} rows).\n"
        f"# Review it, then run `mlops-pipeline check-usecase {name}`. The fields are documented\n"
        "# in mlops_pipeline/usecases/spec.py.\n" + dump(head),
        dump(identity)
        + "# A second row of one entity in a partition: `keep_latest` (the default) quarantines\n"
        "# its older snapshots, `reject` every row after its first (exact copies: either way).\n"
        + commented(
            {"entity": {"duplicates": EntitySpec.model_fields["duplicates"].default.value}}
        ),
        "# Kinds as the sample was read; ranges are the sample's widened by half their span (a\n"
        "# floor of 0 when no value was negative); value sets are the values seen: add the ones\n"
        "# the sample missed. `nullable: true` where the sample had empty values. A feed that\n"
        "# writes a text for a missing value declares it on the column, e.g.\n"
        "# `null_markers: [n/a, '-']`; any other text in a number column rejects the batch.\n"
        + columns(declaration["columns"]),
        "# One feature view with every feature. Split it by how fast values change (each view\n"
        "# has its own ttl); changing the features of a trained model means a new service (v2).\n"
        + dump({"features": declaration["features"]}),
        f"# Columns the promotion gates judge separately (category or bool){segments_hint}.\n"
        + dump({k: declaration[k] for k in ("segments", "protected_attributes")}),
        dump({"serving": declaration["serving"]}),
        "# The defaults below apply as they are; uncomment a line to change it. The split counts\n"
        f"# partitions of the cadence ({declaration['cadence']}).\n"
        + commented({"training": TrainingSpec().model_dump()}),
        f"# Gates: the {task.value} defaults, against fixed floors and the champion.\n"
        + commented(
            {
                "gates": {
                    "metrics": [g.model_dump() for g in DEFAULT_GATES[task]],
                    "primary_metric": PRIMARY_METRIC[task],
                    **gates,
                }
            }
        ),
        commented({"drift": DriftSpec().model_dump()}),
    ]
    return "\n".join(sections)
