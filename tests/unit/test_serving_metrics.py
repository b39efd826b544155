"""The model server's metrics across worker processes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mlops_pipeline.serving.metrics import MULTIPROCESS_DIR_ENV, forget_dead_workers
from tests.conftest import prometheus_samples


def test_gauges_of_dead_workers_are_forgotten_and_live_ones_kept(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(finished.stdout)
    for name in (
        f"gauge_livemax_{dead}.db",
        f"gauge_livemax_{os.getpid()}.db",
        f"counter_{dead}.db",
        f"histogram_{dead}.db",
    ):
        (tmp_path / name).write_bytes(b"")
    forget_dead_workers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"gauge_livemax_{os.getpid()}.db", f"counter_{dead}.db", f"histogram_{dead}.db"]
    )


def _dead_pid() -> int:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(finished.stdout)


def test_a_gauge_another_server_removes_first_is_not_an_error(tmp_path, monkeypatch):
    """Two servers starting in one directory both clean up the same dead worker."""
    import prometheus_client.multiprocess as multiprocess

    dead = _dead_pid()
    (tmp_path / f"gauge_livemax_{dead}.db").write_bytes(b"")
    remove = multiprocess.os.remove

    def removed_by_the_other_server_first(path):
        remove(path)
        remove(path)  # this server's own removal, now of a file that is gone

    monkeypatch.setattr(multiprocess.os, "remove", removed_by_the_other_server_first)
    forget_dead_workers(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_one_worker_keeps_its_values_apart_from_an_inherited_shared_directory(
    tmp_path, monkeypatch
):
    import uvicorn

    import mlops_pipeline.serving.app as app_module
    from mlops_pipeline.config import Settings
    from mlops_pipeline.serving.server import serve

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"")  # another server's values
    monkeypatch.setenv(MULTIPROCESS_DIR_ENV, str(shared))
    seen: dict[str, str] = {}
    monkeypatch.setattr(app_module, "create_app", lambda settings: "app")
    monkeypatch.setattr(
        uvicorn, "run", lambda app, **kwargs: seen.update(dir=os.environ[MULTIPROCESS_DIR_ENV])
    )
    serve(Settings(home=tmp_path / "home", usecase="churn"), "127.0.0.1", 0, workers=1)
    assert seen["dir"] == str(shared / "churn")
    assert (shared / "counter_1.db").exists()


def test_served_versions_are_those_some_worker_still_serves():
    from mlops_pipeline.serving.metrics import served_versions

    exposition = (
        "# HELP mlops_model_info The model being served.\n"
        "# TYPE mlops_model_info gauge\n"
        'mlops_model_info{alias="champion",model="demand",version="3"} 1.0\n'
        'mlops_model_info{alias="champion",model="demand",version="2"} 0.0\n'
        'mlops_model_info{alias="challenger",model="demand",version="4"} 1.0\n'
        'mlops_predictions_total{model="demand"} 7.0\n'
    )
    assert served_versions(exposition, "champion") == {"3"}
    assert served_versions("", "champion") == set()


def test_served_versions_read_what_the_metrics_expose():
    from mlops_pipeline.serving.metrics import Metrics, served_versions

    metrics = Metrics("shop-signal", classifier=True)
    metrics.serving("champion", "1", None)
    metrics.serving("champion", "2", "1")
    assert served_versions(metrics.exposition().decode(), "champion") == {"2"}


def test_a_classifier_counts_predictions_by_decision_under_its_model_name():
    from mlops_pipeline.serving.metrics import Metrics

    metrics = Metrics("shop-signal", classifier=True)
    metrics.predicted(np.array([0.9, 0.2, 0.7]), np.array([True, False, True]))
    metrics.predict_latency.observe(0.002)
    samples = prometheus_samples(metrics.exposition().decode())
    counts = {
        labels["decision"]: value
        for name, labels, value in samples
        if name == "mlops_predictions_total"
    }
    assert counts == {"true": 2.0, "false": 1.0}
    assert _value(samples, "mlops_prediction_score_sum") == pytest.approx(1.8)
    assert _value(samples, "mlops_prediction_score_count") == 3.0
    assert _value(samples, "mlops_predict_latency_seconds_count") == 1.0
    assert {labels.get("model") for _, labels, _ in samples} == {"shop-signal"}


def test_a_regressor_counts_predictions_without_a_decision():
    from mlops_pipeline.serving.metrics import Metrics

    metrics = Metrics("shop-demand", classifier=False)
    metrics.predicted(np.array([12.5, 30.0]), None)
    samples = prometheus_samples(metrics.exposition().decode())
    totals = [
        (labels, value) for name, labels, value in samples if name == "mlops_predictions_total"
    ]
    assert totals == [({"model": "shop-demand"}, 2.0)]
    assert _value(samples, "mlops_prediction_score_sum") == 42.5


def _value(samples, wanted: str) -> float:
    (value,) = [value for name, _, value in samples if name == wanted]
    return value
