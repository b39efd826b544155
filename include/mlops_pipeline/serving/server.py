"""``mlops-pipeline serve --usecase NAME``: one use case's model server under uvicorn, in one
process or in N workers.

One server per use case, not one server for all of them: each is its own process (or group of
workers) on its own port, started with ``MLOPS_USECASE`` naming the model it serves. That is
isolation by construction: a use case whose model is slow, large or crashes (a bad transform,
an out-of-memory load) does not touch the latency or the availability of the others, each
scales and restarts on its own, and a promotion swaps the model of one server only. The price
is one interpreter per use case (its libraries' memory, paid again per model); what a request
costs is unchanged, since a process still scores exactly one model. A router in front (or
per-use-case paths on an ingress) gives clients one address.

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
    """Serve ``settings.spec``'s champion (``settings.usecase`` names the use case)."""
    import uvicorn

    workers = workers or settings.serving_workers
    # One request scores a handful of rows: OpenMP threads in the gradient-boosted trees only
    # add start-up cost per call, and N workers would each start a pool per core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if workers == 1 and not os.environ.get(MULTIPROCESS_DIR_ENV):
        from mlops_pipeline.serving.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        return
    # A directory inherited from the parent (an operator's, or the one importing Feast sets) may
    # be shared with other servers: each use case keeps its values in a folder of its own.
    with _metrics_directory(settings.usecase_name) as directory:
        os.environ[MULTIPROCESS_DIR_ENV] = str(directory)
        if workers == 1:
            from mlops_pipeline.serving.app import create_app

            uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
            return
        # The workers are new interpreters: they read these settings (the use case included)
        # from the environment.
        os.environ.update({**settings.to_env(), "MLOPS_USECASE": settings.usecase_name})
        uvicorn.run(
            "mlops_pipeline.serving.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )


@contextlib.contextmanager
def _metrics_directory(usecase: str) -> Generator[Path]:
    """The use case's folder of the operator's ``PROMETHEUS_MULTIPROC_DIR``, emptied (values
    from an earlier run would be summed in; other use cases' servers keep theirs), else a
    temporary directory removed on exit."""
    given = os.environ.get(MULTIPROCESS_DIR_ENV)
    if given:
        directory = Path(given) / usecase
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="mlops-serving-metrics-") as temporary:
        yield Path(temporary)
