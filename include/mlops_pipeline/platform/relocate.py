"""Moving the embedded state: ``mv .local /elsewhere/x`` and ``MLOPS_HOME=/elsewhere/x``.

What under ``MLOPS_HOME`` names a location, and how it follows a move:

- Feast's registry file: a file source names the lake by its absolute path (Feast's DuckDB
  offline store reads a relative Parquet path from the working directory, not from the repo
  path). Rewritten with Feast's own protobuf classes, and the definitions' fingerprint carried
  over, so nothing is re-applied (``features.store.follow_home_move``).
- MLflow's SQLite store: an experiment's file artifact root is absolute (MLflow resolves a
  relative one against the working directory when the experiment is created), and every run's
  ``artifact_uri``, logged model's ``artifact_location`` and model version's
  ``storage_location`` is derived from it. Rewritten, old home to new.
- The platform's own records (partition manifests, ingestion reports, decision records, drift
  summaries, the registry marker keyed by the tracking URI, Great Expectations' project file
  with its Data Docs directory, and the same records logged as MLflow artifacts with each
  logged model's ``MLmodel``): JSON, YAML and Markdown files that name paths for a reader.
  Rewritten.

The home a state was last used at is kept in ``MLOPS_HOME/home.json``. ``follow_move`` runs
before the platform opens MLflow, Feast or ingests a partition: when the recorded home is not
the current one, it rewrites every absolute path under the old home to the same path under the
new one, then records the new home. It is idempotent (a second call finds the recorded home
current) and serialised by a lock, so concurrent tasks of a moved state rewrite once.

Left alone: Airflow's own metadata database (past runs' XComs and asset-event extras name the
old home; new runs name the new one) and its task logs. ``airflow/`` is not rewritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlops_pipeline.config import Settings

MARKER_FILE = "home.json"
LOCK_FILE = ".relocate.lock"
# The platform's records: text a reader parses for paths. Airflow's directory is its own.
RECORD_SUFFIXES = (".json", ".yml", ".yaml", ".md")
# A logged model's description names the artifact directory it was written to.
RECORD_NAMES = ("MLmodel",)
SKIPPED_DIRS = ("airflow",)
MLFLOW_DATABASE = "mlflow.db"
# Reading where an unmarked state was made is one small query: a store locked longer than this
# is busy, and the lookup waits for the next call rather than holding this one up.
MARKER_LOOKUP_TIMEOUT_SECONDS = 1.0


class StoreBusy(Exception):
    """The MLflow store was locked when an unmarked state's origin was looked up."""


@dataclass
class Relocation:
    """What ``follow_move`` did: the homes, and how many values it rewrote where."""

    old_home: str | None
    new_home: str
    database_values: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    feast_values: dict[str, int] = field(default_factory=dict)

    @property
    def moved(self) -> bool:
        return self.old_home is not None and self.old_home != self.new_home


def marker_path(home: Path) -> Path:
    return home / MARKER_FILE


def recorded_home(home: Path) -> str | None:
    """The home the state under ``home`` was last used at (None: never recorded)."""
    path = marker_path(home)
    if not path.exists():
        return None
    return str(json.loads(path.read_text())["home"])


def follow_move(settings: Settings) -> Relocation:
    """Make the state under ``settings.home`` name ``settings.home``, wherever it was made.

    Cheap when nothing moved (one small file read), so every entry point may call it."""
    home = settings.home
    current = str(home)
    if recorded_home(home) == current or not home.is_dir():
        return Relocation(old_home=current, new_home=current)
    with _locked(home):
        try:
            old = recorded_home(home) or _home_named_by_mlflow(home)
        except StoreBusy:
            # Nothing recorded, nothing learnt: the next call looks again, and what opens the
            # store now reports the lock as its own (retryable) error, without this wait first.
            return Relocation(old_home=None, new_home=current)
        relocation = Relocation(old_home=old, new_home=current)
        if relocation.moved:
            assert old is not None
            rewrite = PathRewriter(Path(old), home)
            relocation.database_values = rewrite_sqlite(home / "mlflow" / MLFLOW_DATABASE, rewrite)
            relocation.files = rewrite_records(home, rewrite)
            relocation.feast_values = _rewrite_feast_registries(settings, Path(old), rewrite)
        _write_marker(home)
    return relocation


class PathRewriter:
    """Replaces every path at or under ``old`` (plain, or as a ``file:`` URI) with the same
    path under ``new``, in one pass: ``/a/home2`` is not under ``/a/home``, and a new home
    inside the old one is not rewritten twice."""

    def __init__(self, old: Path, new: Path) -> None:
        self.forms = {old.as_uri(): new.as_uri(), str(old): str(new)}
        # What a text naming the old home contains (the URI may be percent-encoded).
        self.needles = tuple(self.forms)
        # Longest first: the URI contains the plain path. Not followed by a name character, so
        # a match ends where a path component does.
        alternatives = sorted(self.forms, key=len, reverse=True)
        self.pattern = re.compile(
            "(" + "|".join(re.escape(form) for form in alternatives) + r")(?![\w.\-])"
        )

    def names_old_home(self, text: str) -> bool:
        return any(needle in text for needle in self.needles)

    def __call__(self, text: str) -> str:
        return self.pattern.sub(lambda match: self.forms[match.group(1)], text)


def rewrite_sqlite(database: Path, rewrite: PathRewriter) -> dict[str, int]:
    """Rewrite the text values of every table of a SQLite database that name the old home;
    returns how many values changed per ``table.column``. Every column, not a list of MLflow's:
    a migration that adds one (as logged models did) is covered as it comes."""
    if not database.exists():
        return {}
    changed: dict[str, int] = {}
    connection = sqlite3.connect(database, timeout=60)
    try:
        with connection:
            for table, column in _text_columns(connection):
                found = connection.execute(
                    f'SELECT rowid, "{column}" FROM "{table}" '
                    f'WHERE instr("{column}", ?) > 0 OR instr("{column}", ?) > 0',
                    rewrite.needles,
                ).fetchall()
                updates = [
                    (moved, rowid)
                    for rowid, value in found
                    if isinstance(value, str) and (moved := rewrite(value)) != value
                ]
                if updates:
                    connection.executemany(
                        f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?', updates
                    )
                    changed[f"{table}.{column}"] = len(updates)
    finally:
        connection.close()
    return changed


def _text_columns(connection: sqlite3.Connection) -> Iterator[tuple[str, str]]:
    tables = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND sql NOT LIKE '%WITHOUT ROWID%'"
    ).fetchall()
    for (table,) in tables:
        for _, column, declared, *_ in connection.execute(f'PRAGMA table_info("{table}")'):
            kind = (declared or "").upper()
            if not kind or any(text in kind for text in ("CHAR", "TEXT", "CLOB", "JSON")):
                yield table, column


def rewrite_records(home: Path, rewrite: PathRewriter) -> list[str]:
    """Rewrite the platform's records under ``home`` that name the old home (each replaced
    atomically); returns their paths relative to ``home``."""
    rewritten = []
    for path in sorted(_records(home)):
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        if not rewrite.names_old_home(text):
            continue
        moved = rewrite(text)
        if moved != text:
            _replace(path, moved)
            rewritten.append(path.relative_to(home).as_posix())
    return rewritten


def _records(home: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(home):
        if Path(root) == home:
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        for name in files:
            if (name.endswith(RECORD_SUFFIXES) or name in RECORD_NAMES) and name != MARKER_FILE:
                yield Path(root) / name


def _rewrite_feast_registries(
    settings: Settings, old: Path, rewrite: PathRewriter
) -> dict[str, int]:
    """Each declared use case's Feast registry file (``features.store.follow_home_move``)."""
    from mlops_pipeline.features.store import follow_home_move
    from mlops_pipeline.usecases.loader import declared_usecases

    feast_root = settings.home / "feast"
    if not feast_root.is_dir():
        return {}
    declared = set(declared_usecases(settings.usecases_dir))
    changed = {}
    for folder in sorted(p for p in feast_root.iterdir() if p.name in declared):
        changed[folder.name] = follow_home_move(settings.for_usecase(folder.name), old, rewrite)
    return changed


def _home_named_by_mlflow(home: Path) -> str | None:
    """For a state that predates the marker: the home MLflow's artifact root was made under
    (the embedded root is ``<home>/mlflow/artifacts``, ``deployment.registry``)."""
    database = home / "mlflow" / MLFLOW_DATABASE
    if not database.exists():
        return None
    connection = sqlite3.connect(database, timeout=MARKER_LOOKUP_TIMEOUT_SECONDS)
    try:
        rows = connection.execute("SELECT artifact_location FROM experiments").fetchall()
    except sqlite3.OperationalError as error:
        if "locked" in str(error):
            raise StoreBusy(str(database)) from error
        return None  # not an MLflow database (yet)
    finally:
        connection.close()
    for (location,) in rows:
        match = re.match(r"file://(?P<path>/.*)/mlflow/artifacts(/|$)", location or "")
        if match:
            from urllib.parse import unquote

            return unquote(match.group("path"))
    return None


def _write_marker(home: Path) -> None:
    _replace(marker_path(home), json.dumps({"home": str(home)}, indent=2) + "\n")


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, keeping the file's mode (a reader never sees a
    torn record)."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    with tempfile.NamedTemporaryFile(
        "w",
        dir=path.parent,
        delete=False,
        suffix=".tmp",
        encoding="utf-8",
        errors="surrogateescape",
    ) as out:
        out.write(text)
    os.chmod(out.name, mode)
    os.replace(out.name, path)


@contextmanager
def _locked(home: Path) -> Generator[None, None, None]:
    with open(home / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
