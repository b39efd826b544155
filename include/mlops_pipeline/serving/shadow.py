"""Live shadow: the challenger scores every request the champion answered, after the answer.

With ``MLOPS_SERVING_SHADOW`` on, a model server also loads its use case's ``challenger``
(the same loader and scorer as the champion's) and, once a ``/predict`` answer has been sent,
scores the same feature rows with it. The client only ever sees the champion's answer; the
shadow's scores go to a log of their own (``settings.shadow_predictions_dir``: never mixed
into the champion's, which drift monitoring reads) with the champion's score beside each, and
their latency and errors to ``/metrics``. A shadow that fails is counted and logged, never
raised.

The shadow runs as the request's background task on the event loop, after the response: a
thread would hold the GIL against the next request (NumPy's small-array operations do not
release it), a process would pay a copy of every request. Its cost is the challenger's
compiled scorer on the same rows, paid between requests.

The deploy DAG's shadow gate reads the log: how many requests this challenger version scored,
how many failed and its latency (``shadow_summary``).
"""

from __future__ import annotations

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


class LiveShadow:
    """The challenger of one server process and its log (see the module)."""

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

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.log.close()

    async def score_after(
        self,
        columns: Mapping[str, Sequence[Any]],
        ids: Sequence[int | None],
        champion: LoadedModel,
        champion_scores: np.ndarray,
        source: str,
    ) -> None:
        """``score`` as the request's background task: a coroutine, so Starlette runs it on the
        event loop after the response, not on its thread pool (where it would hold the GIL
        against the requests the loop is serving)."""
        self.score(columns, ids, champion, champion_scores, source)

    def score(
        self,
        columns: Mapping[str, Sequence[Any]],
        ids: Sequence[int | None],
        champion: LoadedModel,
        champion_scores: np.ndarray,
        source: str,
    ) -> None:
        """Score ``columns`` (the rows the champion just answered) with the challenger."""
        shadow = self.watcher.current
        if shadow is None or shadow.version == champion.version:
            return
        request = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        try:
            scores = shadow.scorer.score(columns)
        except Exception as exc:  # noqa: BLE001 - a failing shadow must never touch serving
            self.metrics.shadow_failed(shadow.version)
            reason = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("shadow v%s failed: %s", shadow.version, reason)
            failed = {"model_version": shadow.version, "request": request, "rows": len(ids)}
            self.log.append([{**failed, "champion_version": champion.version, "error": reason}])
            return
        seconds = time.perf_counter() - started
        self.metrics.shadow_scored(shadow.version, seconds, len(ids))
        key = self.spec.entity.key
        decisions = None if shadow.threshold is None else scores >= shadow.threshold
        records = []
        for row, (entity, score) in enumerate(zip(ids, scores.tolist(), strict=True)):
            record: dict[str, Any] = {key: entity, "score": score, "model_version": shadow.version}
            if decisions is not None:
                record["decision"] = bool(decisions[row])
            record["champion_score"] = float(champion_scores[row])
            record.update(
                champion_version=champion.version,
                source=source,
                request=request,
                latency_ms=round(seconds * 1000, 3),
            )
            records.append(record)
        self.log.append(records)


@dataclass(frozen=True)
class ShadowSummary:
    """What the live shadow log says about one challenger version."""

    version: str
    requests: int  # scored requests (one row each, or more)
    rows: int
    errors: int
    p99_ms: float | None
    agreement: float | None  # classifiers: share of rows where the decisions agree

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shadow_summary(
    directory: Path, version: str, since: dt.date | None = None, threshold: float | None = None
) -> ShadowSummary:
    """Counts, errors and latency of ``version``'s shadow scoring in ``directory`` (from day
    ``since`` on). With ``threshold`` (the champion's), the decision agreement of classifiers:
    the champion's decision is read off its logged score."""
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
                latency_of_request[record["request"]] = record["latency_ms"]
                if threshold is not None and "decision" in record:
                    decided += 1
                    agreeing += record["decision"] == (record["champion_score"] >= threshold)
    latencies = sorted(latency_of_request.values())
    p99 = float(np.percentile(latencies, 99)) if latencies else None
    return ShadowSummary(
        version=version,
        requests=len(latencies),
        rows=rows,
        errors=errors,
        p99_ms=p99,
        agreement=agreeing / decided if decided else None,
    )
