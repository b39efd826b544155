"""The live shadow's process: one per model server process, at the lowest CPU priority.

It loads and watches the challenger (the watcher the server was given, or the registry's
``challenger`` alias), lowers the scheduling of all its threads (``SCHED_IDLE``, else
``nice 19``), says which challenger it scores, then loops: wait for a hand-off, let the batch
gather ``FLUSH_SECONDS``, read everything the pipe holds, score it (``shadow.ShadowScorer``),
append its log lines and send the metric events back. The server closing its end of the pipe
(stopping, or dying) is the signal to stop: whatever was still in the pipe is scored first. A
plain blocking loop: it shares no lock and no GIL with the server, and takes a core only when
nothing else wants it (see ``serving.shadow``)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import select
import time
from multiprocessing.connection import Connection
from typing import Any, Protocol

from mlops_pipeline.config import Settings
from mlops_pipeline.serving import shadow as shadow_module
from mlops_pipeline.serving.champion import ChampionWatcher, LoadedModel
from mlops_pipeline.serving.prediction_log import PredictionLog
from mlops_pipeline.serving.shadow import (
    Answered,
    Frames,
    ShadowPriority,
    ShadowScorer,
    ShadowStatus,
    frame,
)

log = logging.getLogger(__name__)

# How often an idle shadow process looks at its watcher (a challenger loaded or gone since).
STATUS_SECONDS = 1.0
# The most read from the pipe for one batch (about what the pipe and the server hold at most),
# a read at most ``READ_CHUNK`` bytes.
READ_BYTES = 4 << 20
READ_CHUNK = 1 << 20


class Watcher(Protocol):
    """What the shadow process needs of a watcher (``ChampionWatcher``, or a test's)."""

    current: LoadedModel | None
    last_error: str | None

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _Portable(pickle.Pickler):
    """Pickles a watcher for the shadow process: a ``ChampionWatcher`` as a new one of the same
    alias (its thread and events stay here). A compiled scorer pickles as its model and is
    compiled again there, with what was checked against the pipeline here."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, ChampionWatcher):
            return ChampionWatcher, (obj.settings, obj.alias, obj.keep_unassigned)
        return NotImplemented


def portable(watcher: object) -> bytes:
    """``watcher`` pickled for the shadow process (see ``_Portable``)."""
    buffer = io.BytesIO()
    _Portable(buffer, protocol=5).dump(watcher)
    return buffer.getvalue()


def lower_priority() -> ShadowPriority:
    """Put every thread of this process at ``SCHED_IDLE`` (Linux; an unprivileged process may),
    else at ``nice 19``; threads they start inherit it. Returns what it got."""
    threads = _threads()
    try:
        for thread in threads:
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        for thread in threads:
            with contextlib.suppress(AttributeError, OSError):
                os.setpriority(os.PRIO_PROCESS, thread, 19)
    return current_priority()


def current_priority() -> ShadowPriority:
    """How this thread is scheduled, and the most threads a native pool of it would use."""
    from threadpoolctl import threadpool_info

    policy = "unknown"
    with contextlib.suppress(AttributeError, OSError):
        scheduler = os.sched_getscheduler(0)
        policy = {os.SCHED_IDLE: "idle", os.SCHED_OTHER: "other"}.get(scheduler, str(scheduler))
    threads = max((pool["num_threads"] for pool in threadpool_info()), default=1)
    return ShadowPriority(policy=policy, nice=os.getpriority(os.PRIO_PROCESS, 0), threads=threads)


def one_native_thread() -> None:
    """Limit the native thread pools loaded so far (scikit-learn's OpenMP, BLAS) to one thread.

    The tree predictors score a batch of a few hundred rows no faster with two, and a team's
    second thread spin-waits on the other core between batches: the core the server needs."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _threads() -> list[int]:
    """This process' thread ids (Linux), else 0: the calling thread."""
    try:
        return [int(thread) for thread in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


class _Reports:
    """The pipe back to the server: blocking writes of whole frames."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection  # owns the descriptor
        self.fd = connection.fileno()
        self._status: ShadowStatus | None = None

    def send(self, message: object) -> None:
        data = memoryview(frame(message))
        while data:
            data = data[os.write(self.fd, data) :]

    def status(self, watcher: Watcher) -> None:
        """Say which challenger is scored, when that changed."""
        current = watcher.current
        status = ShadowStatus(
            version=None if current is None else current.version,
            reason=watcher.last_error if current is None else None,
        )
        if status != self._status:
            self.send(status)
            self._status = status


def main(settings: Settings, watcher: bytes, handoffs: Connection, reports: Connection) -> None:
    """The shadow process (``multiprocessing`` spawns it with the server's ends of the pipes
    closed): ``watcher`` is ``portable``'s pickle."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s shadow process: %(message)s")
    out = _Reports(reports)
    try:
        try:
            loaded: Watcher = pickle.loads(watcher)
            loaded.start()  # loads the challenger now, then watches its alias
        except Exception as exc:
            out.send(ShadowStatus(None, f"the challenger's watcher failed: {exc!r}"[:300]))
            raise
        # Started (its imports and first load, once) at the priority it was given, so that a
        # busy machine cannot hold its start back for ever; then all of it, the watcher's
        # thread included, at the lowest, on one thread, before it scores anything.
        one_native_thread()  # the model's libraries are loaded now
        out.send(lower_priority())
        try:
            run(settings, loaded, handoffs.fileno(), out)
        finally:
            loaded.stop()
    except BrokenPipeError:
        pass  # the server is gone: nobody to shadow for
    # Everything is written (the log closed, the reports unbuffered): skip the interpreter's
    # teardown, which at idle priority on a busy machine would hold the server's stop for
    # seconds unloading libraries.
    logging.shutdown()
    os._exit(0)


def run(settings: Settings, watcher: Watcher, handoffs: int, out: _Reports) -> None:
    """Score what arrives on ``handoffs`` until the server closes it (see the module)."""
    scorer = ShadowScorer(settings.spec)
    shadow_log = PredictionLog(settings.shadow_predictions_dir)
    frames = Frames()
    poller = select.poll()
    poller.register(handoffs, select.POLLIN)
    os.set_blocking(handoffs, False)
    ended = False
    try:
        while not ended:
            out.status(watcher)
            if not poller.poll(STATUS_SECONDS * 1000):
                continue  # nothing handed off: look at the watcher again
            time.sleep(shadow_module.FLUSH_SECONDS)  # one wake-up per batch, not per request
            data, ended = _read_all(handoffs)
            queued = [Answered.of(message) for message in frames.feed(data)]
            shadow = watcher.current
            if not queued or shadow is None:
                continue  # no challenger (yet): nothing to compare with
            try:
                lines, events = scorer.score(queued, shadow)
                shadow_log.append(lines)
            except Exception:  # a bug here must not end the shadow for the server's life
                log.exception("shadow scoring failed")
                continue
            if events:
                out.send(events)
    finally:
        shadow_log.close()


def _read_all(fd: int) -> tuple[bytes, bool]:
    """What the pipe holds now (at most ``READ_BYTES``), and whether its writer closed it."""
    chunks: list[bytes] = []
    size = 0
    while size < READ_BYTES:
        try:
            chunk = os.read(fd, min(READ_CHUNK, READ_BYTES - size))
        except BlockingIOError:
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False
