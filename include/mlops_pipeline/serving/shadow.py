"""Live shadow: the challenger scores the rows the champion answered, in a process of its own.

With ``MLOPS_SERVING_SHADOW`` on, each model server process starts one shadow process
(``serving.shadow_process``), which loads the use case's ``challenger`` (the same loader and
scorer as the champion's) and watches its alias. Each ``/predict`` answers, then hands the rows
it answered (their features, ids and the champion's scores) to that process: one small pickle
of plain lists, written to a pipe without ever blocking. The shadow process reads what has
arrived, scores it with the challenger's scorer ``BATCH_ROWS`` rows a call, writes the log lines
in one write and sends back what the metrics need; the server applies that to ``/metrics``. The
client only ever sees the champion's answer; the shadow's scores go to a log of their own
(``settings.shadow_predictions_dir``: never mixed into the champion's, which drift monitoring
reads) with the champion's score beside each, and their counts, latency and errors to
``/metrics``. A shadow that fails is counted and logged, never raised. Stopping the server
hands over what it still holds and waits for the shadow process to score all of it.

Why a process at idle priority: scored on the server's event loop, even in batches between
requests, the challenger's work delayed every request that arrived during it, and a thread would
hold the GIL against them. Once it has loaded the challenger, the shadow process runs at
``SCHED_IDLE`` (``nice 19`` where that is not permitted): the kernel gives it only the CPU that
the server, the clients and everything else on the machine leave idle, and a server woken by a
request takes the core back at once. What a request pays is the hand-off: pickling its rows and
one non-blocking write. The shadow process wakes once per batch, not per request: woken by a
hand-off, it lets the batch gather for ``FLUSH_SECONDS``, then reads everything that arrived.
Under saturation it gets no CPU and falls behind: its pipe fills, and the server drops the rows
it cannot hand off and counts them in ``mlops_shadow_dropped_total`` (shadow traffic is
best-effort, as mirrored traffic is; the shadow then scores a sample of the traffic, never
delays it). If the shadow process dies, the server keeps serving with the shadow off, counting
every request's rows as dropped.

Latency: a batch's time says nothing about one request's. One request in ``TIMED_EVERY`` (the
first, then every ``TIMED_EVERY``-th) is scored alone, as the challenger would serve it, and
timed; only its log lines carry ``latency_ms`` and only it is observed in
``mlops_shadow_latency_seconds``. The deploy DAG's shadow gate reads the log
(``shadow_summary``): how many requests this challenger version scored, how many failed, and
the p99 of the timed ones. They are timed in CPU time of the scoring thread: the shadow process
runs at idle priority, so its wall time would also count the waits for a free core, which the
challenger would not have as the champion.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import pickle
import struct
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.serving.champion import ChampionWatcher, LoadedModel
from mlops_pipeline.serving.metrics import Metrics
from mlops_pipeline.usecases.spec import UseCaseSpec

log = logging.getLogger(__name__)

# The most rows scored in one call. Past ``scorer.COMPILED_MAX_ROWS`` a call goes to
# scikit-learn's tree predictors, whose cost is mostly per call: a few hundred rows together
# cost a third to a sixth per row of the compiled walk's calls of a few dozen (docs/performance.md).
BATCH_ROWS = 1024
# How long the shadow process lets a batch gather once a hand-off woke it (one wake-up per
# batch): about the longest a handed-off row waits before it is scored, when there is CPU.
FLUSH_SECONDS = 0.25
# One request in this many is scored alone and timed: the challenger's per-request latency.
TIMED_EVERY = 20
# The pipe's buffer asked of the kernel (Linux; best effort: else the default 64 KiB), and the
# hand-offs the server holds itself when the pipe is full; a request beyond both is dropped.
PIPE_BYTES = 1 << 20
MAX_PENDING_BYTES = 1 << 20
# The longest a stopping server waits for the shadow process to score what it was handed.
STOP_SECONDS = 30.0
# The drop counter's version label before the shadow process said which challenger it scores.
UNKNOWN_VERSION = "unknown"
STARTING = "starting: the shadow process is loading the challenger"

_HEADER = struct.Struct("<I")  # a frame on either pipe: its length, then a pickle


def frame(message: object) -> bytes:
    """``message`` as one frame of the pipes between a server and its shadow process."""
    payload = pickle.dumps(message, protocol=5)
    return _HEADER.pack(len(payload)) + payload


class Frames:
    """Reassembles frames from what a pipe gives, in pieces of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        """The messages ``data`` completes, in order (a partial frame waits for the rest)."""
        self._buffer += data
        buffer, start, messages = self._buffer, 0, []
        while len(buffer) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + size
            if end > len(buffer):
                break
            messages.append(pickle.loads(buffer[start + _HEADER.size : end]))
            start = end
        del buffer[:start]
        return messages


def handoff(
    columns: Mapping[str, Sequence[Any]],
    ids: Sequence[int | None],
    champion_version: str,
    champion_scores: np.ndarray,
    source: str,
) -> bytes:
    """One answered request as the server hands it to the shadow process (a frame)."""
    # Plain lists: a NumPy array pickles several times slower than its list.
    return frame((time.time(), champion_version, source, ids, champion_scores.tolist(), columns))


@dataclass
class Answered:
    """One answered request, as the shadow process holds it until scored."""

    columns: Mapping[str, Sequence[Any]]
    ids: Sequence[int | None]
    champion_version: str
    champion_scores: Sequence[float]
    source: str
    ts: str  # when it was answered: its log lines carry this, not the scoring's time
    request: str

    @property
    def rows(self) -> int:
        return len(self.ids)

    @classmethod
    def of(cls, message: tuple[Any, ...]) -> Answered:
        """The request a ``handoff`` carried (unpickled)."""
        answered_at, champion_version, source, ids, scores, columns = message
        when = dt.datetime.fromtimestamp(answered_at, dt.UTC)
        return cls(
            columns=columns,
            ids=ids,
            champion_version=champion_version,
            champion_scores=scores,
            source=source,
            ts=when.isoformat(timespec="milliseconds"),
            request=uuid.uuid4().hex[:16],
        )


@dataclass
class ShadowEvents:
    """What scoring a batch means for ``/metrics``, by challenger version: the shadow process
    sends it, the server applies it."""

    scored: dict[str, int] = field(default_factory=dict)  # rows
    failed: dict[str, int] = field(default_factory=dict)  # requests
    timed: list[tuple[str, float]] = field(default_factory=list)  # seconds of a request alone

    def __bool__(self) -> bool:
        return bool(self.scored or self.failed or self.timed)

    def apply(self, metrics: Metrics) -> None:
        for version, rows in self.scored.items():
            metrics.shadow_scored(version, rows)
        for version, requests in self.failed.items():
            metrics.shadow_failed(version, requests)
        for version, seconds in self.timed:
            metrics.shadow_timed(version, seconds)


@dataclass(frozen=True)
class ShadowStatus:
    """The challenger the shadow process scores (None: none, and why)."""

    version: str | None
    reason: str | None


@dataclass(frozen=True)
class ShadowPriority:
    """How the shadow process is scheduled, as it reports itself."""

    policy: str  # "idle" (SCHED_IDLE), "other" (the default), or "unknown"
    nice: int
    threads: int  # the most threads its native pools (OpenMP, BLAS) would use


class ShadowScorer:
    """The shadow's scoring, without a process: answered requests and the current challenger
    in, log lines and metric events out (``shadow_process`` drives it)."""

    def __init__(self, spec: UseCaseSpec) -> None:
        self.spec = spec
        self._requests = 0  # requests scored so far: one in TIMED_EVERY is timed

    def score(
        self, queued: Sequence[Answered], shadow: LoadedModel
    ) -> tuple[list[dict[str, Any]], ShadowEvents]:
        """Score ``queued`` with ``shadow``, ``BATCH_ROWS`` rows a call, except one request in
        ``TIMED_EVERY`` alone and timed; their log lines in request order."""
        events = ShadowEvents()
        # A request answered by this very version (promoted since it was answered): no shadow.
        queued = [a for a in queued if a.champion_version != shadow.version]
        lines: list[list[dict[str, Any]]] = [[] for _ in queued]
        batch: list[int] = []
        rows = 0
        for index, answered in enumerate(queued):
            timed = self._requests % TIMED_EVERY == 0
            self._requests += 1
            if timed:
                lines[index] = self._score_alone(answered, shadow, events, timed=True)
                continue
            batch.append(index)
            rows += answered.rows
            if rows >= BATCH_ROWS:
                self._score_batch(queued, batch, shadow, lines, events)
                batch, rows = [], 0
        self._score_batch(queued, batch, shadow, lines, events)
        return [line for request in lines for line in request], events

    def _score_batch(
        self,
        queued: list[Answered],
        batch: list[int],
        shadow: LoadedModel,
        lines: list[list[dict[str, Any]]],
        events: ShadowEvents,
    ) -> None:
        """One scoring call for the requests ``batch`` indexes; if it fails, each request
        alone, so that only the requests that fail are counted as failed."""
        if len(batch) <= 1:
            for index in batch:
                lines[index] = self._score_alone(queued[index], shadow, events, timed=False)
            return
        first = queued[batch[0]].columns
        # Lookups and inline requests may carry different extra columns.
        names = [n for n in first if all(n in queued[i].columns for i in batch)]
        columns = {n: [v for i in batch for v in queued[i].columns[n]] for n in names}
        try:
            scores = np.asarray(shadow.scorer.score(columns))
        except Exception:  # noqa: BLE001 - told apart request by request below
            for index in batch:
                lines[index] = self._score_alone(queued[index], shadow, events, timed=False)
            return
        _add(events.scored, shadow.version, len(scores))
        bounds = np.cumsum([queued[i].rows for i in batch])[:-1]
        for index, own in zip(batch, np.split(scores, bounds), strict=True):
            lines[index] = self._records(queued[index], own, shadow, None)

    def _score_alone(
        self, answered: Answered, shadow: LoadedModel, events: ShadowEvents, timed: bool
    ) -> list[dict[str, Any]]:
        """``answered``'s log lines: its scores (``timed``: with the call's latency), or the
        challenger's error, counted."""
        # CPU time of this thread, not wall time: at idle priority the call may wait for a core
        # however fast the challenger is, and the gate judges the challenger.
        started = time.thread_time()
        try:
            scores = np.asarray(shadow.scorer.score(answered.columns))
        except Exception as exc:  # noqa: BLE001 - a failing shadow must never touch serving
            _add(events.failed, shadow.version, 1)
            reason = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("shadow v%s failed: %s", shadow.version, reason)
            failed: dict[str, Any] = {"ts": answered.ts, "model_version": shadow.version}
            failed |= {"request": answered.request, "rows": answered.rows}
            return [{**failed, "champion_version": answered.champion_version, "error": reason}]
        seconds = time.thread_time() - started
        if timed:
            events.timed.append((shadow.version, seconds))
        _add(events.scored, shadow.version, answered.rows)
        return self._records(answered, scores, shadow, seconds if timed else None)

    def _records(
        self,
        answered: Answered,
        scores: np.ndarray,
        shadow: LoadedModel,
        seconds: float | None,
    ) -> list[dict[str, Any]]:
        key = self.spec.entity.key
        decisions = None if shadow.threshold is None else scores >= shadow.threshold
        common: dict[str, Any] = {
            "champion_version": answered.champion_version,
            "source": answered.source,
            "request": answered.request,
        }
        if seconds is not None:
            common["latency_ms"] = round(seconds * 1000, 3)
        records = []
        for row, (entity, score) in enumerate(zip(answered.ids, scores.tolist(), strict=True)):
            record: dict[str, Any] = {"ts": answered.ts, key: entity, "score": score}
            record["model_version"] = shadow.version
            if decisions is not None:
                record["decision"] = bool(decisions[row])
            record["champion_score"] = float(answered.champion_scores[row])
            record.update(common)
            records.append(record)
        return records


def _add(counts: dict[str, int], version: str, n: int) -> None:
    counts[version] = counts.get(version, 0) + n


class LiveShadow:
    """The server's side of its shadow process: starts and stops it, hands it the answered
    requests without blocking, and applies what it reports to the metrics (see the module).

    Everything here runs on the server's event loop."""

    def __init__(
        self, settings: Settings, metrics: Metrics, watcher: ChampionWatcher | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        # What the shadow process runs (a copy of it: see ``shadow_process.portable``). A
        # promoted or retired challenger loses its alias: the shadow stops scoring it.
        self._watcher = watcher or ChampionWatcher(
            settings, alias=registry.CHALLENGER, keep_unassigned=False
        )
        # The challenger the shadow process scores, as it last said (None: none, and why).
        self.version: str | None = None
        self.reason: str | None = STARTING
        self.priority: ShadowPriority | None = None
        self.process: BaseProcess | None = None
        self._reported = False  # the shadow process has said what it scores
        self._known: str | None = None  # the last version it scored: labels drops once it died
        self._dead = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: list[Connection] = []  # they own the two pipes' server ends
        self._out = self._in = -1  # their file descriptors
        self._pending = bytearray()  # hand-offs the full pipe did not take yet, in order
        self._frames = Frames()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        """Start the shadow process (on the running event loop); it loads the challenger on
        its own, and says so when it has."""
        self._loop = asyncio.get_running_loop()
        try:
            self._spawn(self._loop)
        except Exception as exc:  # noqa: BLE001 - a shadow that cannot start must not stop serving
            self._gone(f"the shadow process did not start: {type(exc).__name__}: {exc}")

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> None:
        import multiprocessing

        from mlops_pipeline.serving import shadow_process

        # Not fork: this process has threads (the champion's watcher, the server's) and a loop.
        context = multiprocessing.get_context("spawn")
        handoffs, handoffs_in = context.Pipe(duplex=False)
        events_in, events = context.Pipe(duplex=False)
        self._connections = [handoffs_in, events_in]
        process = context.Process(
            target=shadow_process.main,
            args=(self.settings, shadow_process.portable(self._watcher), handoffs, events),
            name=f"{self.settings.usecase_name}-shadow",
            daemon=True,  # ended with this process, whatever happens to it
        )
        try:
            process.start()
        finally:
            handoffs.close()  # the shadow process' ends: it holds its own copies
            events.close()
            if process.pid is None:  # it did not start: nothing will use the server's ends
                handoffs_in.close()
                events_in.close()
        self.process = process
        self._out, self._in = handoffs_in.fileno(), events_in.fileno()
        os.set_blocking(self._out, False)
        os.set_blocking(self._in, False)
        with contextlib.suppress(AttributeError, OSError):  # Linux only; within the user's limit
            import fcntl

            fcntl.fcntl(self._out, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        loop.add_reader(self._in, self._read_events)

    def enqueue(
        self,
        columns: Mapping[str, Sequence[Any]],
        ids: Sequence[int | None],
        champion: LoadedModel,
        champion_scores: np.ndarray,
        source: str,
    ) -> None:
        """Hand the rows the champion just answered (``columns``, its scores) to the shadow
        process, or drop and count them if it cannot take them now; never blocks, never
        raises."""
        if self._dead:
            self._drop(len(ids))
            return
        if self._reported and self.version in (None, champion.version):
            return  # no challenger, or the challenger answered: nothing to compare
        try:
            self._hand_off(handoff(columns, ids, champion.version, champion_scores, source), ids)
        except Exception:  # a bug here must not fail the request the champion answered
            log.exception("shadow hand-off failed")
            self._drop(len(ids))

    def _hand_off(self, data: bytes, ids: Sequence[int | None]) -> None:
        if self._out < 0 or len(self._pending) + len(data) > MAX_PENDING_BYTES:
            self._drop(len(ids))
            return
        if self._pending:  # behind: after what is waiting, to keep the frames whole
            self._pending += data
            return
        try:
            written = os.write(self._out, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:  # the shadow process is gone (a broken pipe)
            self._gone(f"the shadow process is gone ({type(exc).__name__})")
            self._drop(len(ids))
            return
        if written < len(data):
            self._pending += data[written:]
            if self._loop is not None:
                self._loop.add_writer(self._out, self._flush)

    def _drop(self, rows: int) -> None:
        """Count ``rows`` the shadow process will not score, by the challenger it last named."""
        self.metrics.shadow_dropped(self._known or UNKNOWN_VERSION, rows)

    def _flush(self) -> None:
        """Write what the pipe did not take before (when it can take more)."""
        try:
            written = os.write(self._out, self._pending)
        except BlockingIOError:
            return
        except OSError as exc:
            self._gone(f"the shadow process is gone ({type(exc).__name__})")
            return
        del self._pending[:written]
        if not self._pending and self._loop is not None:
            self._loop.remove_writer(self._out)

    def _read_events(self) -> bool:
        """Apply what the shadow process reported (when its pipe has some); whether there was
        anything to read."""
        try:
            data = os.read(self._in, 1 << 16)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if data:
            for message in self._frames.feed(data):
                self._apply(message)
            return True
        self._close_events()  # it closed its end: it exited
        if not self._stopping:
            code = None if self.process is None else self.process.exitcode
            self._gone("the shadow process exited" + ("" if code is None else f" (code {code})"))
        return False

    def _apply(self, message: object) -> None:
        if isinstance(message, ShadowEvents):
            message.apply(self.metrics)
        elif isinstance(message, ShadowStatus):
            self._reported = True
            self.version, self.reason = message.version, message.reason
            self._known = message.version or self._known
        elif isinstance(message, ShadowPriority):
            self.priority = message

    def _gone(self, reason: str) -> None:
        """The shadow is off for the rest of this process' life: say so, drop from now on."""
        if self._dead:
            return
        self._dead = True
        if self._reported and self.version is None and self.reason:
            reason = f"{reason}, having said: {self.reason}"
        log.warning("live shadow off: %s; serving goes on without it", reason)
        self.version, self.reason = None, f"{reason}: shadow off"
        self._pending.clear()
        self._close_handoffs()

    def _close_handoffs(self) -> None:
        if self._out >= 0:
            if self._loop is not None:
                self._loop.remove_writer(self._out)
            self._connections[0].close()
            self._out = -1

    def _close_events(self) -> None:
        if self._in >= 0:
            if self._loop is not None:
                self._loop.remove_reader(self._in)
            self._connections[1].close()
            self._in = -1

    async def stop(self) -> None:
        """Hand over what is still held, let the shadow process score everything it was given
        (at most ``STOP_SECONDS``, then end it) and apply its last reports."""
        self._stopping = True
        process = self.process
        if process is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_SECONDS
        while self._pending and self._out >= 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)  # ``_flush`` writes as the shadow process reads
        self._close_handoffs()  # its end of the pipe: the shadow process scores all, then exits
        while process.is_alive() and loop.time() < deadline:
            await asyncio.sleep(0.02)  # meanwhile ``_read_events`` applies what it reports
        if process.is_alive():
            log.warning("the shadow process did not finish in %.0f s: ended", STOP_SECONDS)
            process.terminate()
            await asyncio.to_thread(process.join, 5)
            if process.is_alive():
                process.kill()
        await asyncio.to_thread(process.join, 5)
        while self._in >= 0 and self._read_events():
            pass  # what it reported last, up to the end of the pipe
        self._close_events()


@dataclass(frozen=True)
class ShadowSummary:
    """What the live shadow log says about one challenger version."""

    version: str
    requests: int  # scored requests (one row each, or more)
    rows: int
    errors: int
    p99_ms: float | None  # of the requests scored alone and timed (one in ``TIMED_EVERY``)
    agreement: float | None  # classifiers: share of rows where the decisions agree

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shadow_summary(
    directory: Path, version: str, since: dt.date | None = None, threshold: float | None = None
) -> ShadowSummary:
    """Counts, errors and latency of ``version``'s shadow scoring in ``directory`` (from day
    ``since`` on). With ``threshold`` (the champion's), the decision agreement of classifiers:
    the champion's decision is read off its logged score."""
    requests: set[str] = set()
    latency_of_request: dict[str, float] = {}
    rows = errors = agreeing = decided = 0
    for path in sorted(directory.glob("date=*/*.jsonl")):
        if since is not None and path.parent.name.removeprefix("date=") < since.isoformat():
            continue
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if record.get("model_version") != version:
                    continue
                if "error" in record:
                    errors += 1
                    continue
                rows += 1
                requests.add(record["request"])
                if record.get("latency_ms") is not None:
                    latency_of_request[record["request"]] = record["latency_ms"]
                if threshold is not None and "decision" in record:
                    decided += 1
                    agreeing += record["decision"] == (record["champion_score"] >= threshold)
    latencies = sorted(latency_of_request.values())
    p99 = float(np.percentile(latencies, 99)) if latencies else None
    return ShadowSummary(
        version=version,
        requests=len(requests),
        rows=rows,
        errors=errors,
        p99_ms=p99,
        agreement=agreeing / decided if decided else None,
    )
