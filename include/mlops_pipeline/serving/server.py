"""``mlops-pipeline serve``: the model server under uvicorn, in one process or in N workers.

One worker scores on one core. More workers (``MLOPS_SERVING_WORKERS``) each load the champion,
watch its alias and write their own prediction log file. They share one listening socket, so
a new connection goes to whichever idle worker accepts it first (under light sequential load
that may be the same one every time; under concurrent load all of them); uvicorn replaces a
worker that dies."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Generator
from pathlib import Path

from mlops_pipeline.config import Settings
from mlops_pipeline.serving.metrics import MULTIPROCESS_DIR_ENV


def serve(settings: Settings, host: str, port: int, workers: int | None = None) -> None:
    import uvicorn

    workers = workers or settings.serving_workers
    # One request scores a handful of rows: OpenMP threads in the gradient-boosted trees only
    # add start-up cost per call, and N workers would each start a pool per core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if workers == 1:
        from mlops_pipeline.serving.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        return
    with _metrics_directory() as directory:
        # The workers are new interpreters: they read these settings from the environment.
        os.environ.update(settings.to_env())
        os.environ[MULTIPROCESS_DIR_ENV] = str(directory)
        uvicorn.run(
            "mlops_pipeline.serving.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )


@contextlib.contextmanager
def _metrics_directory() -> Generator[Path]:
    """The operator's ``PROMETHEUS_MULTIPROC_DIR`` emptied (values from an earlier run would be
    summed in), else a temporary directory removed on exit."""
    given = os.environ.get(MULTIPROCESS_DIR_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="mlops-serving-metrics-") as temporary:
        yield Path(temporary)
