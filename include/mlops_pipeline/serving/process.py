"""Run the model server as a child process (the demo, tests and benchmarks use this)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Sequence
from typing import cast

from mlops_pipeline.config import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(
    process: subprocess.Popen, url: str, timeout_s: float, output: Callable[[], str]
) -> None:
    """Poll ``url`` until it answers 200; fail at once, with ``output()``, if ``process``
    exits first, or with ``TimeoutError`` after ``timeout_s``."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            program = cast("Sequence[str]", process.args)[0]  # started with an argv list
            raise RuntimeError(f"{program} exited ({process.returncode}): {output()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")
        time.sleep(0.5)


@contextlib.contextmanager
def running_server(
    settings: Settings, extra_env: dict[str, str] | None = None, timeout_s: float = 120
) -> Generator[str]:
    """Start ``mlops-pipeline serve`` on a free port for ``settings`` (its use case); yield its
    base URL once ``/ready`` answers 200; stop it on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_pipeline.platform.cli", "serve", "--port", str(port)],
        env={
            **os.environ,
            **settings.to_env(),
            "MLOPS_USECASE": settings.usecase_name,
            **(extra_env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        stderr = process.stderr
        if stderr is None:
            raise RuntimeError("the server's stderr is not piped")
        wait_until_ready(
            process, f"{base}/ready", timeout_s, lambda: stderr.read().decode()[-3000:]
        )
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
