"""A moved MLOPS_HOME keeps working: the champion loads, features are read, status and the
MLOps view answer, the next version trains, and nothing under the new home names the old one
(``platform.relocate``)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.platform.relocate import (
    PathRewriter,
    follow_move,
    recorded_home,
    rewrite_sqlite,
)
from tests.ui.state import DAYS, GOOD, prepare_lake, train_and_decide


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """A home with nine validated days, two materialized, a promoted v1 and its decision
    record, then moved as ``mv`` would: (the old home, settings on the new one)."""
    from mlops_pipeline.features.materialization import days_interval, materialize_interval

    root = tmp_path_factory.mktemp("relocate")
    made_at = root / "made-here" / "home"
    settings = prepare_lake(get_settings().replace(home=made_at))
    materialize_interval(settings, *days_interval(DAYS[-2:]))
    assert train_and_decide(settings, GOOD, "before the move") == "1"
    assert recorded_home(made_at) == str(made_at)
    moved_to = root / "elsewhere" / "x"
    moved_to.parent.mkdir()
    made_at.rename(moved_to)
    return made_at, settings.replace(home=moved_to)


def _naming(home: Path, old: Path) -> list[str]:
    """Files under ``home`` whose bytes contain the path ``old`` (databases included)."""
    needle = str(old).encode()
    return sorted(
        p.relative_to(home).as_posix()
        for p in home.rglob("*")
        if p.is_file() and needle in p.read_bytes()
    )


def test_the_champion_loads_from_the_moved_artifacts(moved):
    from mlops_pipeline.deployment import registry
    from mlops_pipeline.deployment.loading import load_alias

    _, settings = moved
    tracking = registry.client(settings)
    champion = load_alias(tracking, settings.spec, registry.CHAMPION)
    assert champion is not None and champion.version == "1"
    version = tracking.get_model_version(settings.spec.model_name, "1")
    run = tracking.get_run(version.run_id)
    assert run.info.artifact_uri.startswith(settings.home.as_uri() + "/")


def test_features_are_read_from_the_moved_lake(moved):
    from mlops_pipeline.features.access import OnlineFeatureReader, build_training_set
    from mlops_pipeline.features.materialization import materialized_ranges
    from mlops_pipeline.features.store import register_definitions

    _, settings = moved
    # The definitions do not name the home: nothing to re-apply, the intervals are kept.
    assert register_definitions(settings).applied is False
    assert materialized_ranges(settings), "materialization intervals survive the move"
    frame = build_training_set(settings, DAYS[0], DAYS[-1]).frame
    assert len(frame) > 0 and frame[list(settings.spec.feature_columns)].notna().any().all()
    key = settings.spec.entity.key
    ids = frame[frame[settings.spec.timestamp].dt.date == DAYS[-1]][key].head(3).tolist()
    served = OnlineFeatureReader(settings).read(ids)
    column = settings.spec.feature_columns[0]
    assert served[key] == ids and all(value is not None for value in served[column])


def test_status_and_the_mlops_view_answer_for_the_moved_home(moved):
    from mlops_pipeline.platform.mlops_view.state import view_state
    from mlops_pipeline.platform.status import platform_status

    _, settings = moved
    status = platform_status(settings)
    assert status["mlops_home"] == str(settings.home)
    assert status["models"]["aliases"]["champion"] == "1"
    assert len(status["ingestion"]["validated_partitions"]) == 7  # the newest, by limit
    view = view_state(settings)
    assert view["ingestion"]["data_docs_url"] == "reports/data_docs/index.html"
    assert view["decisions"] and view["models"]["champion_card_url"]


def test_the_next_version_trains_and_is_judged_in_the_moved_home(moved):
    from mlops_pipeline.deployment import registry

    _, settings = moved
    assert train_and_decide(settings, GOOD, "after the move") == "2"
    tracking = registry.client(settings)
    run = tracking.get_run(tracking.get_model_version(settings.spec.model_name, "2").run_id)
    assert run.info.artifact_uri.startswith(settings.home.as_uri() + "/")


def test_nothing_under_the_moved_home_names_the_old_one(moved):
    from mlops_pipeline.deployment import registry

    old, settings = moved
    registry.client(settings)  # what every process does first
    assert _naming(settings.home, old) == []
    assert recorded_home(settings.home) == str(settings.home)
    again = follow_move(settings)
    assert not again.moved and again.database_values == {} and again.files == []


def _small_state(home: Path) -> None:
    """A record and an MLflow-shaped database naming ``home``, as the platform writes them."""
    (home / "mlflow").mkdir(parents=True)
    (home / "reports").mkdir()
    (home / "reports" / "record.json").write_text(
        json.dumps({"partition": str(home / "lake"), "other": str(home) + "2/lake"})
    )
    database = sqlite3.connect(home / "mlflow" / "mlflow.db")
    with database:
        database.execute("CREATE TABLE experiments (artifact_location VARCHAR(256))")
        database.execute("CREATE TABLE runs (artifact_uri VARCHAR(200), lifecycle INTEGER)")
        artifacts = (home / "mlflow" / "artifacts").as_uri()
        database.execute("INSERT INTO experiments VALUES (?)", (artifacts + "/1",))
        database.execute("INSERT INTO runs VALUES (?, 1)", (artifacts + "/1/abc/artifacts",))
    database.close()


def _values(database: Path) -> list[str]:
    connection = sqlite3.connect(database)
    try:
        return [
            *(r for (r,) in connection.execute("SELECT artifact_location FROM experiments")),
            *(r for (r,) in connection.execute("SELECT artifact_uri FROM runs")),
        ]
    finally:
        connection.close()


def test_a_copy_is_rewritten_and_the_original_left_as_it_was(tmp_path):
    original = tmp_path / "repo" / ".local"
    _small_state(original)
    follow_move(get_settings().replace(home=original))  # first use: records where it lives
    copy = tmp_path / "copy" / ".local"
    shutil.copytree(original, copy)
    relocation = follow_move(get_settings().replace(home=copy))
    assert relocation.moved and relocation.old_home == str(original)
    assert relocation.database_values == {
        "experiments.artifact_location": 1,
        "runs.artifact_uri": 1,
    }
    assert relocation.files == ["reports/record.json"]
    record = json.loads((copy / "reports" / "record.json").read_text())
    # A sibling that merely starts with the old home's name is not under it.
    assert record == {"partition": str(copy / "lake"), "other": str(original) + "2/lake"}
    assert all(v.startswith(copy.as_uri() + "/") for v in _values(copy / "mlflow" / "mlflow.db"))
    assert all(v.startswith(original.as_uri()) for v in _values(original / "mlflow" / "mlflow.db"))


def test_a_state_older_than_the_marker_is_located_by_its_artifact_root(tmp_path):
    made_at = tmp_path / "before"
    _small_state(made_at)
    moved_to = tmp_path / "after"
    made_at.rename(moved_to)
    relocation = follow_move(get_settings().replace(home=moved_to))
    assert relocation.old_home == str(made_at) and relocation.files == ["reports/record.json"]
    assert recorded_home(moved_to) == str(moved_to)


def test_paths_are_rewritten_once_plain_or_as_uris():
    old, new = Path("/srv/state"), Path("/srv/state/inner")
    rewrite = PathRewriter(old, new)
    assert rewrite("/srv/state") == "/srv/state/inner"
    assert rewrite("file:///srv/state/mlflow/1") == "file:///srv/state/inner/mlflow/1"
    assert rewrite('{"a": "/srv/state/lake", "b": "/srv/state.bak"}') == (
        '{"a": "/srv/state/inner/lake", "b": "/srv/state.bak"}'
    )
    spaced = PathRewriter(Path("/srv/my state"), Path("/srv/x"))
    assert spaced("file:///srv/my%20state/a /srv/my state/b") == "file:///srv/x/a /srv/x/b"


def test_rewriting_a_database_twice_changes_nothing_the_second_time(tmp_path):
    _small_state(tmp_path / "home")
    database = tmp_path / "home" / "mlflow" / "mlflow.db"
    rewrite = PathRewriter(tmp_path / "home", tmp_path / "new")
    assert sum(rewrite_sqlite(database, rewrite).values()) == 2
    assert rewrite_sqlite(database, rewrite) == {}


def test_every_command_line_command_follows_a_move_first(tmp_path, monkeypatch, capsys):
    from mlops_pipeline.platform.cli import main

    original = tmp_path / "repo" / ".local"
    _small_state(original)
    follow_move(get_settings().replace(home=original))
    moved = tmp_path / "moved"
    original.rename(moved)
    monkeypatch.setenv("MLOPS_HOME", str(moved))
    assert main(["check-usecase", "churn"]) == 0  # reads no state, yet the move is followed
    assert recorded_home(moved) == str(moved)
    record = json.loads((moved / "reports" / "record.json").read_text())
    assert record["partition"] == str(moved / "lake")


def test_a_locked_store_leaves_the_origin_of_an_unmarked_state_for_the_next_call(tmp_path):
    """A first use with MLflow's store locked (a long write elsewhere) neither waits for it nor
    records a home it could not check: a move made before the marker is still found later."""
    made_at = tmp_path / "before"
    _small_state(made_at)
    moved_to = tmp_path / "after"
    made_at.rename(moved_to)
    settings = get_settings().replace(home=moved_to)
    holder = sqlite3.connect(moved_to / "mlflow" / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        busy = follow_move(settings)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not busy.moved and recorded_home(moved_to) is None
    relocation = follow_move(settings)
    assert relocation.old_home == str(made_at) and recorded_home(moved_to) == str(moved_to)
