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
