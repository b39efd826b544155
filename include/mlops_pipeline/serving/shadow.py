"""Live shadow: the challenger scores the rows the champion answered, batched, after the answers.

With ``MLOPS_SERVING_SHADOW`` on, a model server also loads its use case's ``challenger``
(the same loader and scorer as the champion's). Each ``/predict`` hands the rows it answered
(their features, ids and the champion's scores) to a bounded in-process queue and answers; one
task on the event loop scores what has queued in one vectorised call of the challenger's
scorer once ``BATCH_ROWS`` rows are waiting or ``FLUSH_SECONDS`` have passed, writes their log
lines in one write and updates the metrics. The client only ever sees the champion's answer;
the shadow's scores go to a log of their own (``settings.shadow_predictions_dir``: never mixed
into the champion's, which drift monitoring reads) with the champion's score beside each, and
their counts, latency and errors to ``/metrics``. A shadow that fails is counted and logged,
never raised; a full queue drops the request's rows and counts them (shadow traffic is
best-effort, as mirrored traffic is). Stopping the server scores what is still queued.

Why batched, on the loop: scoring per request cost the champion's own core the challenger's
fixed per-call cost on every request; a thread would hold the GIL against the next request
(NumPy's small-array operations do not release it) and a process would pay a copy of every
request. A batch pays that fixed cost once for all its rows.

Latency: a batch's time says nothing about one request's. One request in ``TIMED_EVERY`` (the
first, then every ``TIMED_EVERY``-th) is scored alone, as the challenger would serve it, and
timed; only its log lines carry ``latency_ms`` and only it is observed in
``mlops_shadow_latency_seconds``. The deploy DAG's shadow gate reads the log
(``shadow_summary``): how many requests this challenger version scored, how many failed, and
the p99 of the timed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.serving.champion import ChampionWatcher, LoadedModel
from mlops_pipeline.serving.metrics import Metrics
from mlops_pipeline.serving.prediction_log import PredictionLog

log = logging.getLogger(__name__)

# Rows scored in one call. The compiled walk's fixed cost per call is paid once for them; past
# a few rows it costs about the same per row however many there are, so a larger batch would
# only hold the event loop longer against the requests waiting (docs/performance.md).
BATCH_ROWS = 8
# The longest a queued row waits for its batch to fill (only reached under light traffic).
FLUSH_SECONDS = 0.05
# Rows held at most (a few of the largest requests) while the drain is behind; a request that
# would exceed it is dropped, and counted.
MAX_QUEUED_ROWS = 4096
# One request in this many is scored alone and timed: the challenger's per-request latency.
TIMED_EVERY = 20


@dataclass
class _Answered:
    """One answered request, as the shadow queues it."""

    columns: Mapping[str, Sequence[Any]]
    ids: Sequence[int | None]
    champion_version: str
    champion_scores: np.ndarray
    source: str
    ts: str  # when it was answered: its log lines carry this, not the drain's time
    request: str
    timed: bool

    @property
    def rows(self) -> int:
        return len(self.ids)


class LiveShadow:
    """The challenger of one server process, its queue and its log (see the module)."""

    def __init__(
        self, settings: Settings, metrics: Metrics, watcher: ChampionWatcher | None = None
    ) -> None:
        self.spec = settings.spec
        # A promoted or retired challenger loses its alias: stop shadowing it.
        self.watcher = watcher or ChampionWatcher(
            settings, alias=registry.CHALLENGER, keep_unassigned=False
        )
        self.log = PredictionLog(settings.shadow_predictions_dir)
        self.metrics = metrics
        self._queue: list[_Answered] = []
        self._queued_rows = 0
        self._requests = 0
        self._full = asyncio.Event()
        self._stopping = False
        self._drainer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Load the challenger and start the drain (on the running event loop)."""
        self.watcher.start()
        self._drainer = asyncio.get_running_loop().create_task(self._drain_forever())

    async def stop(self) -> None:
        """Score what is still queued, then stop watching and close the log."""
        self._stopping = True
        self._full.set()
        if self._drainer is not None:
            await self._drainer
        await self.drain()
        self.watcher.stop()
        self.log.close()

    def enqueue(
        self,
        columns: Mapping[str, Sequence[Any]],
        ids: Sequence[int | None],
        champion: LoadedModel,
        champion_scores: np.ndarray,
        source: str,
    ) -> None:
        """Queue the rows the champion just answered (``columns``, its scores) for the
        challenger; they are not copied, so the caller must not change them after."""
        shadow = self.watcher.current
        if shadow is None or shadow.version == champion.version:
            return
        if self._queued_rows + len(ids) > MAX_QUEUED_ROWS:
            self.metrics.shadow_dropped(shadow.version, len(ids))
            return
        self._queue.append(
            _Answered(
                columns=columns,
                ids=ids,
                champion_version=champion.version,
                champion_scores=champion_scores,
                source=source,
                ts=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                request=uuid.uuid4().hex[:16],
                timed=self._requests % TIMED_EVERY == 0,
            )
        )
        self._requests += 1
        self._queued_rows += len(ids)
        if self._queued_rows >= BATCH_ROWS:
            self._full.set()

    async def _drain_forever(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), FLUSH_SECONDS)
            self._full.clear()
            try:
                await self.drain()
            except Exception:  # a bug here must not end the shadow for the process' life
                log.exception("shadow drain failed")

    async def drain(self) -> None:
        """Score everything queued with the current challenger, ``BATCH_ROWS`` rows a call
        (the loop serves requests between calls), and log it in one write, in request order."""
        queued, self._queue, self._queued_rows = self._queue, [], 0
        shadow = self.watcher.current
        if shadow is None:
            return
        # A request answered by this very version (promoted since it was queued): no shadow.
        queued = [a for a in queued if a.champion_version != shadow.version]
        lines: list[list[dict[str, Any]]] = [[] for _ in queued]
        batch: list[int] = []
        rows = 0
        for index, answered in enumerate(queued):
            if answered.timed:
                lines[index] = self._score_alone(answered, shadow, timed=True)
                continue
            batch.append(index)
            rows += answered.rows
            if rows >= BATCH_ROWS:
                self._score_batch(queued, batch, shadow, lines)
                batch, rows = [], 0
                await asyncio.sleep(0)
        self._score_batch(queued, batch, shadow, lines)
        self.log.append([line for request in lines for line in request])

    def _score_batch(
        self,
        queued: list[_Answered],
        batch: list[int],
        shadow: LoadedModel,
        lines: list[list[dict[str, Any]]],
    ) -> None:
        """One scoring call for the requests ``batch`` indexes; if it fails, each request
        alone, so that only the requests that fail are counted as failed."""
        if len(batch) <= 1:
            for index in batch:
                lines[index] = self._score_alone(queued[index], shadow, timed=False)
            return
        first = queued[batch[0]].columns
        # Lookups and inline requests may carry different extra columns.
        names = [n for n in first if all(n in queued[i].columns for i in batch)]
        columns = {n: [v for i in batch for v in queued[i].columns[n]] for n in names}
        try:
            scores = np.asarray(shadow.scorer.score(columns))
        except Exception:  # noqa: BLE001 - told apart request by request below
            for index in batch:
                lines[index] = self._score_alone(queued[index], shadow, timed=False)
            return
        self.metrics.shadow_scored(shadow.version, len(scores))
        bounds = np.cumsum([queued[i].rows for i in batch])[:-1]
        for index, own in zip(batch, np.split(scores, bounds), strict=True):
            lines[index] = self._records(queued[index], own, shadow, None)

    def _score_alone(
        self, answered: _Answered, shadow: LoadedModel, timed: bool
    ) -> list[dict[str, Any]]:
        """``answered``'s log lines: its scores (``timed``: with the call's latency), or the
        challenger's error, counted."""
        started = time.perf_counter()
        try:
            scores = np.asarray(shadow.scorer.score(answered.columns))
        except Exception as exc:  # noqa: BLE001 - a failing shadow must never touch serving
            self.metrics.shadow_failed(shadow.version)
            reason = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("shadow v%s failed: %s", shadow.version, reason)
            failed: dict[str, Any] = {"ts": answered.ts, "model_version": shadow.version}
            failed |= {"request": answered.request, "rows": answered.rows}
            return [{**failed, "champion_version": answered.champion_version, "error": reason}]
        seconds = time.perf_counter() - started
        if timed:
            self.metrics.shadow_timed(shadow.version, seconds)
        self.metrics.shadow_scored(shadow.version, answered.rows)
        return self._records(answered, scores, shadow, seconds if timed else None)

    def _records(
        self,
        answered: _Answered,
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
