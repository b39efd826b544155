"""Faults injected into a model server process of its own: a SIGKILL in the middle of a burst
of requests, and many connections held open and busy at once. The server is the app
``test_serving_faults`` serves (its embedded use case, model and online store, the same
fixtures) under uvicorn in a forked child, so the kernel can kill it as it would kill a
worker. Each asserts the answers and the prediction log: whole JSON lines only, one record per
answered prediction, none lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Generator
from multiprocessing.process import BaseProcess
from typing import Any

import httpx
import psutil
import uvicorn

from mlops_pipeline.config import Settings
from mlops_pipeline.serving.app import create_app
from mlops_pipeline.serving.champion import LoadedModel
from mlops_pipeline.serving.process import free_port
from tests.faults.test_serving_faults import _instance
from tests.unit.test_serving_app import StaticWatcher

KNOWN = [1, 2, 3, 4, 5]  # shops the embedded online store holds
# The connections' load is scored inline: it judges how connections are served, not the online
# store's one reader thread, whose read deadline counts the wait behind 200 other reads.
INLINE = {"instances": [{**_instance(), "shop_id": shop} for shop in KNOWN]}
BURST_THREADS = 8
CONNECTIONS = 200
HOLD_SECONDS = 2.0  # the issue held 200 for 10 s by hand; the same connections, briefer


def _serve(settings: Settings, served: LoadedModel, port: int) -> None:
    uvicorn.run(
        create_app(settings, StaticWatcher(served)),
        host="127.0.0.1",
        port=port,
        log_level="error",
        # A client starved of CPU on shared cores can leave a connection idle past uvicorn's
        # 5 s keep-alive; the server then closes it as the next request arrives. That race is
        # HTTP keep-alive's (clients retry it), not the server fault judged here.
        timeout_keep_alive=60,
    )


@contextlib.contextmanager
def server_process(settings: Settings, served: LoadedModel) -> Generator[tuple[str, BaseProcess]]:
    """The app under uvicorn in a forked child (it inherits the trained model, nothing is
    re-trained or pickled); its base URL and the process, once ``/ready`` answers (as traffic
    is sent to a server: ready means the online store answered a read too)."""
    port = free_port()
    process = multiprocessing.get_context("fork").Process(
        target=_serve, args=(settings, served, port), daemon=True
    )
    process.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.is_alive(), f"the server exited ({process.exitcode})"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                break
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    try:
        yield base, process
    finally:
        if process.is_alive():
            process.terminate()
            process.join(timeout=15)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


def _logged(settings: Settings, pid: int | None) -> list[dict[str, Any]]:
    """The records the process ``pid`` logged; fails on a line that is not whole JSON."""
    records = []
    for path in sorted(settings.predictions_dir.glob(f"date=*/predictions-{pid}.jsonl")):
        raw = path.read_bytes()
        assert raw.endswith(b"\n"), f"{path.name} ends inside a line: {raw[-200:]!r}"
        records += [json.loads(line) for line in raw.splitlines()]
    return records


def test_a_sigkill_mid_burst_leaves_whole_log_lines_for_every_answer(embedded, model):
    answered: list[int] = []  # predictions per 200 answer
    others: list[int] = []  # any other status
    broken: list[str] = []  # how each client's last request ended
    with server_process(embedded, model) as (base, process):

        def burst() -> None:
            with httpx.Client(base_url=base, timeout=10) as client:
                while True:
                    try:
                        response = client.post("/predict", json={"entities": {"shop_id": KNOWN}})
                    except httpx.TransportError as error:
                        broken.append(type(error).__name__)
                        return
                    if response.status_code == 200:
                        answered.append(len(response.json()["predictions"]))
                    else:
                        others.append(response.status_code)

        clients = [threading.Thread(target=burst) for _ in range(BURST_THREADS)]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 30
        while len(answered) < 40:  # well into the burst, every client busy
            assert time.monotonic() < deadline and not others, others
            time.sleep(0.02)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        for client in clients:
            client.join(timeout=30)
        process.join(timeout=10)
        assert process.exitcode == -signal.SIGKILL

    assert not others and len(broken) == BURST_THREADS, (others, broken)
    records = _logged(embedded, process.pid)
    # Each answer was logged before it was sent; the requests cut off may have been logged too.
    assert sum(answered) <= len(records) <= sum(answered) + BURST_THREADS * len(KNOWN)
    assert {r["shop_id"] for r in records} == set(KNOWN)
    assert all(isinstance(r["score"], float) and r["model_version"] == "1" for r in records)


async def _hold_connections(base: str, pid: int) -> tuple[list[int], list[int], int, int]:
    """``CONNECTIONS`` connections, each posting back to back for ``HOLD_SECONDS``:
    predictions per answer, statuses, the most connections the server held at once, and
    ``/health``'s status under the load."""
    answered: list[int] = []
    statuses: list[int] = []
    # One client, one pooled connection per concurrent poster (a client each would build an
    # SSL context each, seconds for nothing on plain HTTP).
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    server = psutil.Process(pid)
    deadline = time.monotonic() + HOLD_SECONDS

    async def keep_posting(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            response = await client.post("/predict", json=INLINE)
            statuses.append(response.status_code)
            if response.status_code == 200:
                answered.append(len(response.json()["predictions"]))

    def established() -> int:
        return sum(c.status == psutil.CONN_ESTABLISHED for c in server.net_connections("tcp"))

    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        load = asyncio.gather(*(keep_posting(client) for _ in range(CONNECTIONS)))
        held = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            held = max(held, await asyncio.to_thread(established))
        async with httpx.AsyncClient(base_url=base, timeout=30) as probe:
            health = (await probe.get("/health")).status_code
        await load
    return answered, statuses, held, health


def test_many_concurrent_connections_are_all_answered_and_logged(embedded, model):
    with server_process(embedded, model) as (base, process):
        assert process.pid is not None
        answered, statuses, held, health = asyncio.run(_hold_connections(base, process.pid))
        # Stopped the way an operator stops it: whatever it answered is in its log.
        process.terminate()
        process.join(timeout=15)

    assert set(statuses) == {200} and len(statuses) >= CONNECTIONS, set(statuses)
    assert held >= CONNECTIONS, f"at most {held} connections were open at once"
    assert health == 200
    records = _logged(embedded, process.pid)
    assert len(records) == sum(answered)
    assert {(r["shop_id"], r["source"]) for r in records} == {(shop, "inline") for shop in KNOWN}
