"""Scaffold a use case from a sample of its data, and check a declared one.

``mlops-pipeline new-usecase NAME --from FILE --entity COL --timestamp COL --label COL`` reads the
sample the way ingestion reads a landing file (so the kinds inferred are the kinds the
validation will see) and drafts ``usecases/NAME/usecase.yaml``: every column's kind, its range
(from the sample, widened) or value set, whether it may be empty, one feature view holding every
feature, the versioned feature service and the serving fields. The split, training, gates and
drift policy keep the spec's defaults and are written as comments, rendered from the spec's own
models, so the user sees what applies without the file holding a second copy of a default.
It also writes ``dags/NAME.py``, the use case's two-line entry point into the DAG factory.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.failures import PermanentFailure, SpecError
from mlops_pipeline.usecases.loader import DECLARATION, UseCase, declared_usecases, load_usecase
from mlops_pipeline.usecases.spec import (
    DEFAULT_GATES,
    NAME_PATTERN,
    PRIMARY_METRIC,
    Cadence,
    DriftSpec,
    GatesSpec,
    Kind,
    Task,
    TrainingSpec,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops_pipeline.config import Settings

# A text column is a closed value set when it has at most this many distinct values and each
# value appears at least twice on average; otherwise any string is allowed.
MAX_CATEGORY_VALUES = 50
# Text labels a classifier reads as booleans (the reader already maps true/false).
BOOL_WORDS: tuple[frozenset[str], ...] = (frozenset({"true", "false"}), frozenset({"yes", "no"}))
TRUE_WORDS = frozenset({"true", "yes"})
# Ranges are the sample's, widened by this share of their span on each side (a floor of 0 when
# the sample has no negative value): a sample rarely holds the extremes of the real data.
RANGE_MARGIN = 0.5
# A feature is served while its latest value is at most this many partitions old.
TTL_PARTITIONS = 2
SAMPLE_FORMATS = (".csv", ".parquet")
# The repository's line length (ruff): the generated DAG file keeps to it.
MAX_LINE = 100
# Rows ``check-usecase`` runs the on-demand functions on.
TRANSFORM_CHECK_ROWS = 64


class ScaffoldError(PermanentFailure):
    """The sample or the arguments cannot make a valid use case (the message says why)."""


@dataclass(frozen=True)
class Scaffolded:
    """What ``new-usecase`` wrote."""

    name: str
    declaration: Path
    dag_file: Path
    task: Task
    columns: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "declaration": str(self.declaration),
            "dag_file": str(self.dag_file),
            "task": self.task.value,
            "columns": self.columns,
            "notes": self.notes,
        }


def read_sample(path: Path) -> pa.Table:
    """The sample as ingestion reads a landing file (pyarrow, ISO 8601 timestamps)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ScaffoldError(f"--from: no file {path}")
    if path.suffix not in SAMPLE_FORMATS:
        raise ScaffoldError(f"--from: {path.name} is not a CSV or Parquet file")
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        return pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(timestamp_parsers=[pacsv.ISO8601]),
        )
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise ScaffoldError(f"--from: {path} is not readable: {exc}") from exc


def infer_task(table: pa.Table, label: str) -> Task:
    """Two label values: a binary classifier; more numbers: a regression."""
    import pyarrow as pa

    column = _column(table, label, "--label")
    values = column.drop_null().unique().to_pylist()
    if pa.types.is_boolean(column.type) or _bool_words(column) is not None:
        return Task.BINARY_CLASSIFICATION
    if len(values) <= 2 and (pa.types.is_integer(column.type) or _numeric(column.type)):
        if set(values) <= {0, 1}:
            return Task.BINARY_CLASSIFICATION
        raise ScaffoldError(
            f"--label: {label!r} has the two values {sorted(values)}: a classifier needs 0/1 "
            "or true/false (recode it), or pass --task regression"
        )
    if _numeric(column.type):
        return Task.REGRESSION
    raise ScaffoldError(
        f"--label: {label!r} holds {len(values)} text values: only binary classification "
        "(0/1, true/false, yes/no) and regression (numbers) are supported"
    )


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
    if cadence is Cadence.HOURLY:
        raise ScaffoldError("--cadence: hourly partitions are not supported yet (daily, weekly)")
    given = {"--entity": entity_key, "--timestamp": timestamp, "--label": label}
    for option, column in given.items():
        _column(table, column, option)
    if len(set(given.values())) != 3:
        raise ScaffoldError("--entity, --timestamp and --label must name three different columns")
    task = task or infer_task(table, label)
    notes: list[str] = []
    columns: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for column_name in table.column_names:
        try:
            columns[column_name] = _infer_column(
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
    ttl_days = cadence.length.days * TTL_PARTITIONS
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
                f"{name}_features": {"ttl": f"P{ttl_days}D", "features": features},
            },
            "service": f"{name}_v1",
            "service_description": f"Features of the {name} model, version 1.",
        },
        "segments": [],
        "protected_attributes": [],
        "serving": serving,
    }
    return declaration, notes


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
        dump(identity),
        "# Kinds as the sample was read; ranges are the sample's widened by half their span (a\n"
        "# floor of 0 when no value was negative); value sets are the values seen: add the ones\n"
        "# the sample missed. `nullable: true` where the sample had empty values.\n"
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


def dag_file_text(name: str) -> str:
    """The use case's DAG file (the form of the shipped ones): the factory builds its DAGs from
    the declaration."""
    doc = f"Airflow DAGs of the `{name}` use case, built from `usecases/{name}/usecase.yaml`."
    if len(doc) + 6 > MAX_LINE:
        doc = doc.replace(" built from ", " built from\n")
    return (
        f'"""{doc}"""\n'
        "\n"
        "from mlops_pipeline.orchestration.factory import build_dags\n"
        "\n"
        f'globals().update(build_dags("{name}"))\n'
    )


def default_dags_dir(settings: Settings) -> Path:
    """Airflow's DAG folder when configured, else ``dags/`` beside the use-case folders."""
    configured = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    return Path(configured) if configured else settings.usecases_dir.parent / "dags"


def scaffold_usecase(
    settings: Settings,
    name: str,
    sample: Path,
    entity_key: str,
    timestamp: str,
    label: str,
    task: Task | None = None,
    cadence: Cadence = Cadence.DAILY,
    dataset: str | None = None,
    dags_dir: Path | None = None,
) -> Scaffolded:
    """Write ``usecases/<name>/usecase.yaml`` and ``<dags_dir>/<name>.py`` drafted from
    ``sample``. Refuses to overwrite either; the declaration is validated before it is written.
    """
    folder = settings.usecases_dir / name
    dag_file = (dags_dir or default_dags_dir(settings)) / f"{name}.py"
    for existing in (folder / DECLARATION, dag_file):
        if existing.exists():
            raise ScaffoldError(f"{existing} already exists: the use case {name!r} is declared")
    table = read_sample(sample)
    if table.num_rows == 0:
        raise ScaffoldError(f"--from: {sample} has no rows")
    declaration, notes = draft_declaration(
        table, name, entity_key, timestamp, label, task, cadence, dataset
    )
    candidates = [
        c
        for c, spec in declaration["columns"].items()
        if c in declaration["features"]["views"][f"{name}_features"]["features"]
        and (spec["kind"] == Kind.BOOL.value or spec.get("values"))
    ]
    text = render_declaration(declaration, sample.name, table.num_rows, candidates)
    # Validate the text exactly as it will be loaded, before anything is written.
    with tempfile.TemporaryDirectory(prefix="mlops-scaffold-") as scratch:
        draft = Path(scratch) / name
        draft.mkdir()
        (draft / DECLARATION).write_text(text)
        try:
            usecase = load_usecase(draft)
        except SpecError as exc:
            raise ScaffoldError(f"the drafted declaration is not valid: {exc}") from None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DECLARATION).write_text(text)
    dag_file.parent.mkdir(parents=True, exist_ok=True)
    dag_file.write_text(dag_file_text(name))
    return Scaffolded(
        name=name,
        declaration=folder / DECLARATION,
        dag_file=dag_file,
        task=usecase.task,
        columns={c: s.kind.value for c, s in usecase.columns.items()},
        notes=notes,
    )


def check_usecase(settings: Settings, name: str) -> UseCase:
    """Load and validate a declared use case, including its transforms: raises ``SpecError``
    listing every problem, ``UserCodeError`` when transforms.py fails to import or a function
    raises on rows drawn from the contract (with the missing values serving meets)."""
    if not (settings.usecases_dir / name / DECLARATION).exists():
        declared = ", ".join(declared_usecases(settings.usecases_dir)) or "none"
        raise SpecError(
            f"no use case {name!r} under {settings.usecases_dir} (declared: {declared})"
        )
    usecase = settings.for_usecase(name).spec
    missing = []
    for view, spec in usecase.features.on_demand.items():
        try:
            usecase.transform(spec.function)
        except SpecError as exc:
            missing.append(f"features.on_demand.{view}.function: {exc}")
    if missing:
        raise SpecError("\n".join(missing))
    if usecase.features.on_demand:
        from mlops_pipeline.features.on_demand import add_on_demand_features
        from mlops_pipeline.serving.scorer import verification_sample

        sample = verification_sample(usecase, rows=TRANSFORM_CHECK_ROWS)
        add_on_demand_features(usecase, {c: sample[c] for c in usecase.feature_columns})
    return usecase


def summary(usecase: UseCase) -> str:
    """One line describing a valid use case."""
    views = len(usecase.features.views) + len(usecase.features.on_demand)
    return (
        f"{usecase.name}: valid ({usecase.task.value}, {usecase.cadence.value}; entity "
        f"{usecase.entity.key}, label {usecase.label}; {len(usecase.model_features)} features "
        f"in {views} view(s), service {usecase.features.service}; model {usecase.model_name})"
    )


# Inference of one column.


def _infer_column(
    table: pa.Table,
    name: str,
    entity_key: str,
    timestamp: str,
    label: str,
    task: Task,
    notes: list[str],
) -> dict[str, Any]:
    import pyarrow as pa

    column = table.column(name)
    nulls = column.null_count
    kind_of = column.type
    if pa.types.is_dictionary(kind_of):
        kind_of = kind_of.value_type
    role = {entity_key: "--entity", timestamp: "--timestamp", label: "--label"}.get(name)
    if role and nulls:
        raise ScaffoldError(f"{role}: {name!r} has {nulls} empty value(s) in the sample")
    if role == "--timestamp":
        if not pa.types.is_timestamp(kind_of):
            raise ScaffoldError(
                f"--timestamp: {name!r} is {kind_of}, not ISO 8601 timestamps "
                "(e.g. 2025-06-02T10:00:00Z)"
            )
        if kind_of.tz is None:
            raise ScaffoldError(
                f"--timestamp: {name!r} has no time zone: landing files need UTC timestamps "
                "(a Z or +00:00 suffix)"
            )
        return {"kind": Kind.TIMESTAMP.value}
    if pa.types.is_timestamp(kind_of) or pa.types.is_date(kind_of) or pa.types.is_time(kind_of):
        raise ScaffoldError(
            f"column {name!r} holds dates or times: only the event timestamp may; drop it or "
            "turn it into a number (e.g. days since)"
        )
    if role == "--entity":
        if not pa.types.is_integer(kind_of):
            raise ScaffoldError(
                f"--entity: {name!r} is {kind_of}: the entity key must be an int column"
            )
        low = _min_max(column)[0]
        return {"kind": Kind.INT.value, **({"min": 0} if low >= 0 else {})}
    if role == "--label":
        return _label(column, name, task, notes)
    spec: dict[str, Any]
    if pa.types.is_boolean(kind_of):
        spec = {"kind": Kind.BOOL.value}
    elif _numeric(kind_of):
        integral = pa.types.is_integer(kind_of) and not nulls
        if pa.types.is_integer(kind_of) and nulls:
            # pandas holds integers with gaps as floats: declared float, as the lake holds it.
            notes.append(f"{name}: integers with empty values, declared float")
        low, high = _min_max(column)
        spec = {"kind": (Kind.INT if integral else Kind.FLOAT).value}
        spec |= _widened(low, high, integral)
    elif pa.types.is_string(kind_of) or pa.types.is_large_string(kind_of):
        values = sorted(str(v) for v in column.drop_null().unique().to_pylist())
        spec = {"kind": Kind.CATEGORY.value}
        if len(values) <= MAX_CATEGORY_VALUES and 2 * len(values) <= len(column) - nulls:
            spec["values"] = values
        else:
            notes.append(f"{name}: {len(values)} distinct values, left open (any string)")
    else:
        raise ScaffoldError(f"column {name!r} is {kind_of}: no kind of the contract fits it")
    if nulls:
        spec["nullable"] = True
    return spec


def _label(column: pa.ChunkedArray, name: str, task: Task, notes: list[str]) -> dict[str, Any]:
    import pyarrow as pa

    if task is Task.BINARY_CLASSIFICATION:
        if pa.types.is_boolean(column.type):
            return {"kind": Kind.BOOL.value}
        if _bool_words(column) is not None:
            notes.append(f"{name}: yes/no text declared bool: landing files must carry true/false")
            return {"kind": Kind.BOOL.value}
        values = set(column.drop_null().unique().to_pylist())
        if pa.types.is_integer(column.type) and values <= {0, 1}:
            return {"kind": Kind.INT.value, "min": 0, "max": 1}
        raise ScaffoldError(
            f"--label: {name!r} ({column.type}, values {sorted(map(str, values))[:5]}) is not "
            "0/1 or true/false, as a classifier's label must be"
        )
    if not _numeric(column.type):
        raise ScaffoldError(f"--label: {name!r} is {column.type}: a regression label is a number")
    low = _min_max(column)[0]
    kind = Kind.INT if pa.types.is_integer(column.type) else Kind.FLOAT
    return {"kind": kind.value, **({"min": 0} if low >= 0 else {})}


def _column(table: pa.Table, name: str, option: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise ScaffoldError(f"{option}: no column {name!r} in the sample ({table.column_names})")
    return table.column(name)


def _numeric(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _bool_words(column: pa.ChunkedArray) -> frozenset[str] | None:
    import pyarrow as pa

    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None
    seen = frozenset(str(v).strip().lower() for v in column.drop_null().unique().to_pylist())
    return next((words for words in BOOL_WORDS if seen and seen <= words), None)


def _min_max(column: pa.ChunkedArray) -> tuple[float, float]:
    import pyarrow.compute as pc

    extremes = pc.min_max(column)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    if low is None or high is None:
        raise ScaffoldError("a numeric column has no value in the sample")
    return float(low), float(high)


def _widened(low: float, high: float, integral: bool) -> dict[str, float | int]:
    span = (high - low) or abs(high) or 1.0
    lower = 0.0 if low >= 0 else _nice(low - RANGE_MARGIN * span, up=False)
    upper = _nice(high + RANGE_MARGIN * span, up=True)
    if integral:
        return {"min": int(math.floor(lower)), "max": int(math.ceil(upper))}
    return {"min": lower, "max": upper}


def _nice(value: float, up: bool) -> float:
    """``value`` rounded outwards to two significant digits (127.3 -> 130, -0.0412 -> -0.042)."""
    if value == 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(abs(value))) - 1)
    rounded = (math.ceil if up else math.floor)(value / step) * step
    return float(f"{rounded:.12g}")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    if slug and not slug[0].isalpha():
        slug = f"c_{slug}"
    return slug[:40]


def _free(field_name: str, columns: dict[str, Any]) -> str:
    return field_name if field_name not in columns else f"{field_name}_score"
