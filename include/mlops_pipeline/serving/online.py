"""The online store as the model server sees it: reads with a deadline, and a short-lived
verdict on whether it is reachable.

An unreachable store must cost a client a clear 503 in bounded time, not the store client's
own retries (seconds of back-off), and must not stall the event loop meanwhile, so each read
runs on one dedicated thread (one at a time, as on the event loop) and is given up once the read
in progress has taken ``READ_DEADLINE_S`` (requests queued behind reads that do answer wait:
that is load, not an unreachable store). After a failure the store is reported down, without
being asked again, for ``RECHECK_S``; then the next read or ``/ready`` asks it again. ``/ready``
asks at most once per ``RECHECK_S`` (a one-entity read), so it stays fast while reflecting the
store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.failures import TransientFailure

READ_DEADLINE_S = 1.5
RECHECK_S = 2.0
# Any id serves as the readiness probe: an unknown one is still a full round trip.
PROBE_ID = 0


class OnlineStoreUnavailable(TransientFailure):
    """The online store did not answer, or answered with an error."""


class OnlineStore:
    """Reads of one server process, and its verdict on the store (see the module)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reader: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._problem: str | None = None
        self._checked_at = -float("inf")
        self._probe = asyncio.Lock()
        # When the read on the reader thread began (None while it is idle).
        self._running_since: float | None = None

    def open(self) -> None:
        """Start the reader thread and open the store (a failure is reported, not raised)."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="online-store")
        self._connect()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _connect(self) -> None:
        from mlops_pipeline.features.access import OnlineFeatureReader

        try:
            self._reader = OnlineFeatureReader(self.settings)
        except Exception as exc:  # noqa: BLE001 - any failure to open means unavailable
            self._failed(f"cannot open the feature store: {_described(exc)}")
            return
        # The first read pays the store client's lazy imports and connection set-up (seconds on
        # a busy machine): paid here, at start-up, not within the first request's deadline.
        try:
            self._reader.read([PROBE_ID])
        except Exception as exc:  # noqa: BLE001 - whatever the store client raised
            self._failed(_described(exc))
        else:
            self._checked_at = time.monotonic()

    def _read_now(self, ids: list[int]) -> dict[str, list[Any]]:
        self._running_since = time.monotonic()
        try:
            if self._reader is None:  # it failed to open at start-up: try again
                from mlops_pipeline.features.access import OnlineFeatureReader

                self._reader = OnlineFeatureReader(self.settings)
            return self._reader.read(ids)
        finally:
            self._running_since = None

    async def _answer(self, future: asyncio.Future[dict[str, list[Any]]]) -> dict[str, list[Any]]:
        """``future``'s result, or ``TimeoutError`` once the read in progress (this one or the
        one it waits behind) has run ``READ_DEADLINE_S``: time queued behind reads that answer
        is load, not an unreachable store."""
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(future), READ_DEADLINE_S / 3)
            except TimeoutError:
                started = self._running_since
                if started is not None and time.monotonic() - started >= READ_DEADLINE_S:
                    future.cancel()  # a read still queued never reaches the stuck client
                    raise

    async def read(self, ids: Sequence[int]) -> dict[str, list[Any]]:
        """The features of ``ids`` (``OnlineFeatureReader.read``), or
        ``OnlineStoreUnavailable`` within ``READ_DEADLINE_S``."""
        if self._problem is not None and not self._stale():
            raise OnlineStoreUnavailable(self._problem)
        if self._executor is None:
            raise OnlineStoreUnavailable("online store reads not started")
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._read_now, list(ids)
        )
        try:
            columns = await self._answer(future)
        except TimeoutError:
            raise self._failed(f"no answer within {READ_DEADLINE_S} s") from None
        except Exception as exc:  # noqa: BLE001 - whatever the store client raised
            raise self._failed(_described(exc)) from exc
        self._problem, self._checked_at = None, time.monotonic()
        return columns

    async def problem(self) -> str | None:
        """None when the store answered within the last ``RECHECK_S``, else why not."""
        async with self._probe:
            if self._stale():
                try:
                    await self.read([PROBE_ID])
                except OnlineStoreUnavailable:
                    pass
        return self._problem

    def _stale(self) -> bool:
        return time.monotonic() - self._checked_at >= RECHECK_S

    def _failed(self, reason: str) -> OnlineStoreUnavailable:
        self._problem = f"online store unavailable: {reason}"
        self._checked_at = time.monotonic()
        return OnlineStoreUnavailable(self._problem)


def _described(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."
