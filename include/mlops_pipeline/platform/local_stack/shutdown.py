"""How the local stack takes Ctrl-C, SIGTERM and SIGHUP, and the loop that keeps it up.

The first signal stops the stack: SIGTERM to every process it started, then SIGKILL after the
timeout. ``make`` forwards a SIGTERM to its child that the child's process group already got, so
a repeat within ``SAME_REQUEST_SECONDS`` is the same request; a later one (a second Ctrl-C from
someone who will not wait) SIGKILLs what is left at once. Once stopping has begun no signal
interrupts it, so no signal can leave a process behind.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

from mlops_pipeline.platform.local_stack import StackError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SAME_REQUEST_SECONDS = 1.0


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived: raised once, where the stack was starting or waiting."""


class StopRequests:
    """The signal handler: turns the first stop signal into ``StopRequested`` (unless stopping
    has begun), drops its duplicates, and escalates a later one to ``kill``."""

    def __init__(
        self, kill: Callable[[], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.kill = kill
        self.clock = clock
        self.first: float | None = None
        self.killed = False
        # One way: once stopping has begun, nothing raises into it.
        self.stopping = False
        self._deferring = 0
        self._pending = False

    def install(self) -> None:
        global _active
        _active = self
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        now = self.clock()
        if self.first is None:
            self.first = now
            if self.stopping:
                return
            if self._deferring:
                self._pending = True
                return
            raise StopRequested(signal.Signals(signum).name)
        if self.killed or now - self.first < SAME_REQUEST_SECONDS:
            return
        self.killed = True
        # os.write: a print here could re-enter a print the signal interrupted.
        os.write(2, f"{signal.Signals(signum).name} again: killing what is left\n".encode())
        self.kill()

    @contextmanager
    def deferred(self) -> Generator[None, None, None]:
        """Hold the first signal's exception until the block is over (a child started but not
        yet recorded would be missed by the stop)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if self._pending and not self._deferring and not self.stopping:
            self._pending = False
            raise StopRequested("deferred")


_active: StopRequests | None = None


@contextmanager
def deferred() -> Generator[None, None, None]:
    """``StopRequests.deferred`` of the installed handler (nothing to defer without one)."""
    if _active is None:
        yield
        return
    with _active.deferred():
        yield


def stopping() -> None:
    """Stopping has begun: from now on signals never raise, a later one only kills."""
    if _active is not None:
        _active.stopping = True


class Supervised(Protocol):
    def start(self) -> None: ...
    def banner(self) -> str: ...
    def check_alive(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...


def serve(stack: Supervised, poll_seconds: float = 2.0) -> int:
    """Start ``stack``, print its banner, keep it up until a stop signal or until a component
    exits (exit code 1), and stop it whatever ended the wait."""
    requests = StopRequests(kill=stack.kill)
    requests.install()
    error: StackError | None = None
    try:
        try:
            stack.start()
            print(stack.banner(), flush=True)
            while True:
                time.sleep(poll_seconds)
                stack.check_alive()
        except StackError as exc:
            requests.stopping = True
            error = exc
    except StopRequested:
        print("Stopping ...", flush=True)
    finally:
        requests.stopping = True
        stack.stop()
    if error is not None:
        print(f"local stack: {error}", file=sys.stderr)
        return 1
    print("Stopped.", flush=True)
    return 0
