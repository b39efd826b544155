"""``mlops-pipeline new-usecase``: draft a use case from a sample, validate it as it will be
loaded, then write its folder and its DAG file."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.failures import SpecError
from mlops_pipeline.orchestration.dag_file import dag_file_text
from mlops_pipeline.usecases.loader import DECLARATION, load_usecase
from mlops_pipeline.usecases.scaffold import ScaffoldError
from mlops_pipeline.usecases.scaffold.draft import draft_declaration
from mlops_pipeline.usecases.scaffold.inference import read_sample
from mlops_pipeline.usecases.scaffold.render import render_declaration
from mlops_pipeline.usecases.spec import Cadence, Kind, Task

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings


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
