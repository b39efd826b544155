"""The model server's metrics across worker processes."""

from __future__ import annotations

import os
import subprocess
import sys

from mlops_pipeline.serving.metrics import forget_dead_workers


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


def test_served_versions_are_those_some_worker_still_serves():
    from mlops_pipeline.serving.metrics import served_versions

    exposition = (
        "# HELP churn_model_info The model being served.\n"
        "# TYPE churn_model_info gauge\n"
        'churn_model_info{alias="champion",name="churn-classifier",version="3"} 1.0\n'
        'churn_model_info{alias="champion",name="churn-classifier",version="2"} 0.0\n'
        'churn_model_info{alias="challenger",name="churn-classifier",version="4"} 1.0\n'
        'churn_predictions_total{churn="true"} 7.0\n'
    )
    assert served_versions(exposition, "champion") == {"3"}
    assert served_versions("", "champion") == set()
