"""Where each partition of the data lives: the landing zone, the validated lake, quarantine.

Partitions are Hive-style ``date=<key>`` folders so Feast, DuckDB and pyarrow datasets read the
lake directly; a partition is named by its start (``partition_key``: ``date=YYYY-MM-DD`` for a
day or a week, named by its Monday; ``date=YYYY-MM-DDTHH`` for an hour). One level for every
cadence keeps the readers' ``date=*`` globs the same.
Files starting with ``_`` (manifests) are skipped by those readers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.usecases.vocabulary import partition_from_key, partition_key

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings

LANDING_FORMATS = ("csv", "parquet")
MANIFEST = "_manifest.json"


def partition_dir(root: Path, day: dt.date) -> Path:
    return root / f"date={partition_key(day)}"


def landing_file(settings: Settings, day: dt.date, file_format: str = "csv") -> Path:
    """Where the partition holding ``day`` lands:
    ``<landing_dir>/date=<first day>/<dataset>.<format>``."""
    if file_format not in LANDING_FORMATS:
        raise ValueError(f"landing format must be one of {LANDING_FORMATS}, not {file_format!r}")
    spec = settings.spec
    partition = spec.cadence.partition_of(day)
    return partition_dir(settings.landing_dir, partition) / f"{spec.dataset}.{file_format}"


def find_landing_file(settings: Settings, day: dt.date) -> Path | None:
    """The landed file of the partition holding ``day``, whichever supported format it
    arrived in: the first ``<dataset>.<format>`` entry there, whatever it is (a directory or a
    dangling link under that name has landed too, and ingestion rejects it). The landing
    sensor waits for this."""
    for file_format in LANDING_FORMATS:
        path = landing_file(settings, day, file_format)
        if path.exists() or path.is_symlink():
            return path
    return None


def is_scratch(name: str) -> bool:
    """Entries of a landing partition that are never data: hidden names (``.DS_Store``, an
    upload in progress under a hidden name) and ``_``-prefixed markers (``_SUCCESS``), the
    convention the lake's readers follow too."""
    return name.startswith((".", "_"))


def landing_entries(settings: Settings, day: dt.date) -> list[Path]:
    """Everything but scratch in the landing partition holding ``day``, sorted."""
    folder = partition_dir(settings.landing_dir, settings.spec.cadence.partition_of(day))
    if not folder.is_dir():
        return []
    return sorted(entry for entry in folder.iterdir() if not is_scratch(entry.name))


def partition_days(root: Path) -> list[dt.date]:
    if not root.exists():
        return []
    days = []
    for child in root.iterdir():
        if child.is_dir() and child.name.startswith("date="):
            days.append(partition_from_key(child.name.removeprefix("date=")))
    return sorted(days)


def replace_partition(root: Path, day: dt.date, write: Any) -> Path:
    """Build a partition in a staging folder and swap it in whole.

    ``write(folder)`` fills the staging folder. Readers see either the old partition or the new
    one, never a mix, and a re-run replaces rather than appends.
    """
    target = partition_dir(root, day)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{target.name}-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        write(staging)
        retired = None
        if target.exists():
            retired = root / f".retired-{target.name}-{uuid.uuid4().hex}"
            os.replace(target, retired)
        os.replace(staging, target)
        if retired is not None:
            shutil.rmtree(retired)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def remove_partition(root: Path, day: dt.date) -> bool:
    target = partition_dir(root, day)
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only: created with mode 600 (never
    briefly world-readable), and set to 600 if the file existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def read_manifest(partition: Path) -> dict[str, Any] | None:
    path = partition / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text())
