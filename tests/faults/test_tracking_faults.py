"""Faults injected into MLflow tracking for real: the SQLite file of a registry that held a model
removed, the registry replaced by an empty one, the database locked by another connection
(``BEGIN EXCLUSIVE``), a tracking URI on a closed port and a server that only answers 503.
Each asserts the error, its message, how long it took, and that nothing was changed."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlops_pipeline.deployment import registry, registry_state
from mlops_pipeline.deployment.registry_state import RegistryMissing
from mlops_pipeline.orchestration.failures import fail_fast
from mlops_pipeline.orchestration.retry_policy import retrying_tasks, worst_case_seconds
from mlops_pipeline.training.job import TrainingRequest, train_and_register

# MLflow's own client budget against a refused server (seven retries doubling from 2 s), which
# each Airflow attempt used to spend.
MLFLOW_DEFAULT_ATTEMPT_SECONDS = 254


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite database with its schema and nothing else (migrating one takes seconds,
    so the tests copy it)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}", f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def embedded(settings, empty_store):
    """The settings, with the embedded store in place (a copy of the empty one)."""
    settings.mlflow_dir.mkdir(parents=True)
    shutil.copy(empty_store, settings.mlflow_dir / "mlflow.db")
    return settings


def registered_models(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [name for (name,) in connection.execute("SELECT name FROM registered_models")]


def test_a_missing_store_that_held_a_model_is_refused_not_recreated(embedded):
    database = embedded.mlflow_dir / "mlflow.db"
    registry.ensure_registered_model(registry.client(embedded), embedded)
    name = embedded.spec.model_name
    assert registry_state.known_models(embedded) == [name]

    database.unlink()
    with pytest.raises(RegistryMissing) as refused:
        registry.client(embedded)
    message = str(refused.value)
    assert str(database) in message and name in message
    assert f"rm {registry_state.marker_path(embedded)}" in message, "names the way to recover"
    assert not database.exists(), "no new, empty registry was created in its place"
    # Training, which would register "v1" in an empty registry, stops before anything.
    with pytest.raises(RegistryMissing):
        train_and_register(embedded, TrainingRequest(dt.date(2025, 6, 1), reason="fresh clone"))
    assert not database.exists()

    # The deliberate recovery the message names: forget the marker, and a fresh store is fine.
    registry_state.marker_path(embedded).unlink()
    registry_state.refuse_missing_store(embedded)


def test_an_emptied_registry_is_refused(embedded):
    """The marker says the registry held a model; the store there holds none (replaced by an
    empty one, as a tracking server on a fresh database would be)."""
    name = embedded.spec.model_name
    registry_state.record_models(embedded, [name])
    with pytest.raises(RegistryMissing, match=f"holds none of the models it held \\({name}"):
        registry.client(embedded)
    assert registered_models(embedded.mlflow_dir / "mlflow.db") == []


def test_a_registry_from_before_the_marker_is_remembered_when_first_seen(embedded):
    tracking = registry.client(embedded)
    tracking.create_registered_model("made_elsewhere")
    assert registry_state.known_models(embedded) == []
    registry.client(embedded)
    assert registry_state.known_models(embedded) == ["made_elsewhere"]


@contextlib.contextmanager
def exclusive_lock(database: Path) -> Generator[None, None, None]:
    """The store write-locked by another connection, as a long transaction elsewhere holds it."""
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_store_is_the_retryable_tracking_error(embedded):
    database = embedded.mlflow_dir / "mlflow.db"
    with exclusive_lock(database):
        started = time.monotonic()
        with pytest.raises(registry.TrackingUnavailable) as raised:
            registry.client(embedded)
        # SQLite waits for the lock (5 s on connecting), then gives up: one wait, no retry loop.
        assert time.monotonic() - started < 30
    assert f"store {database} is locked by another process" in str(raised.value)
    assert "OperationalError" in type(raised.value.__cause__).__name__
    assert registered_models(database) == []


def test_a_lock_in_the_middle_of_a_task_is_the_retryable_tracking_error(embedded):
    """Connected first, then locked: the MLflow error a task's call raises is translated by
    the tasks' failure adapter, not left as a raw database error."""
    database = embedded.mlflow_dir / "mlflow.db"
    tracking = registry.client(embedded)
    with exclusive_lock(database):
        started = time.monotonic()
        with pytest.raises(registry.TrackingUnavailable) as raised, fail_fast():
            tracking.create_registered_model("never_registered")
        assert time.monotonic() - started < 45, "MLflow waits 20 s for the lock, once"
    assert "is locked by another process" in str(raised.value)
    assert type(raised.value.__cause__).__module__.startswith("mlflow")
    assert registered_models(database) == []


@pytest.fixture
def http_budget_unset(monkeypatch):
    """MLflow's HTTP variables as a fresh environment has them (unset), restored after; and
    MLflow's request-header plugins loaded (its first request imports them, Feast among them,
    which takes seconds once per process and is no part of an attempt's time)."""
    import mlflow.tracking.request_header.registry  # noqa: F401

    for name in registry.HTTP_CLIENT_BUDGET:
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_tracking_server_fails_the_attempt_at_once(settings, http_budget_unset):
    uri = f"http://127.0.0.1:{closed_port()}"
    remote = settings.replace(mlflow_tracking_uri=uri)
    started = time.monotonic()
    with pytest.raises(registry.TrackingUnavailable, match=f"MLflow tracking at {uri}"):
        registry.client(remote)
    attempt = time.monotonic() - started
    assert attempt < 15, f"one attempt took {attempt:.0f} s (MLflow alone retries for minutes)"
    # The task's retries are the one budget: the whole task fails within minutes, where the
    # client's own budget inside each attempt made it about twenty.
    args = retrying_tasks("tests")
    assert worst_case_seconds(args, attempt) < 9 * 60
    assert worst_case_seconds(args, MLFLOW_DEFAULT_ATTEMPT_SECONDS) > 2 * worst_case_seconds(
        args, attempt
    )
    assert not settings.mlflow_dir.exists(), "no embedded store was created instead"


class _Unavailable(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).requests.append(self.path)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


def test_an_unavailable_tracking_server_is_asked_once_per_attempt(settings, http_budget_unset):
    """MLflow retries a 503 itself by default (eight requests over minutes); within a task
    attempt it asks once, and the task's retry policy decides what comes next."""
    _Unavailable.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        remote = settings.replace(mlflow_tracking_uri=f"http://127.0.0.1:{server.server_port}")
        started = time.monotonic()
        with pytest.raises(registry.TrackingUnavailable, match="503"):
            registry.client(remote)
        assert time.monotonic() - started < 15
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Unavailable.requests) == 1, _Unavailable.requests
