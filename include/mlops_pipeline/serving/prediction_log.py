"""Every prediction, appended to ``<settings.predictions_dir>/date=YYYY-MM-DD/`` (one folder per
use case) as JSON lines, one file per server process, for drift monitoring.

A record: ``ts``, the entity key, ``score``, ``decision`` (classifiers), ``model_version``,
``source`` (``online`` or ``inline``) and every model input by its name."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import IO, Any


class PredictionLog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        # The day's file stays open: opening it per request cost more than the model.
        self._path: Path | None = None
        self._handle: IO[str] | None = None

    def path_for(self, day: dt.date) -> Path:
        return self.root / f"date={day.isoformat()}" / f"predictions-{os.getpid()}.jsonl"

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        now = dt.datetime.now(dt.UTC)
        path = self.path_for(now.date())
        stamp = now.isoformat(timespec="milliseconds")
        lines = "".join(json.dumps({"ts": stamp, **r}, default=str) + "\n" for r in records)
        with self._lock:
            if path != self._path or self._handle is None:
                self._close()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = path.open("a", encoding="utf-8")
                self._path = path
            self._handle.write(lines)
            self._handle.flush()  # whole lines only: readers never see half a record

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = self._path = None
