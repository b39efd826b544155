"""Every prediction, appended to ``MLOPS_HOME/predictions/date=YYYY-MM-DD/`` as JSON lines
(one file per server process), for drift monitoring."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any


class PredictionLog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

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
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(lines)
