"""The served model: loaded by alias (``deployment.loading``), swapped atomically when the
alias moves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.deployment.loading import LoadedVersion, load_version
from mlops_pipeline.serving.scorer import Scorer, scorer_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """The served version and how requests are scored on it."""

    loaded: LoadedVersion
    scorer: Scorer  # the model, compiled when that is exact
    alias: str  # the alias it is served as

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def version(self) -> str:
        return self.loaded.version

    @property
    def threshold(self) -> float | None:
        return self.loaded.threshold

    @property
    def model(self) -> Any:
        return self.loaded.model

    @property
    def run_id(self) -> str:
        return self.loaded.run_id

    @property
    def loaded_at(self) -> str | None:
        return self.loaded.loaded_at


class ChampionWatcher:
    """Holds the current model; a background thread re-reads the alias every
    ``poll_seconds`` and loads a new version *before* swapping the reference, so requests
    always see a complete model (the old one until the new one is ready)."""

    def __init__(
        self, settings: Settings, alias: str = registry.CHAMPION, keep_unassigned: bool = True
    ) -> None:
        self.settings = settings
        self.alias = alias
        # A champion is served until another replaces it; a shadow ends with its alias.
        self.keep_unassigned = keep_unassigned
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        # Called with (replaced, loaded) after every swap, on the thread that swapped.
        self.on_swap: list[Callable[[LoadedModel | None, LoadedModel], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load the alias' version if it changed; returns whether a swap happened."""
        tracking = registry.client(self.settings)
        spec = self.settings.spec
        name = spec.model_name
        version = registry.version_for_alias(tracking, name, self.alias)
        if version is None:
            self.last_error = f"{name} has no @{self.alias} yet"
            if not self.keep_unassigned:
                self.current = None
            return False
        if self.current is not None and self.current.version == str(version.version):
            return False
        loaded = load_version(tracking, spec, version, self.alias)
        scorer = scorer_for(loaded.model, spec)
        replaced = self.current
        self.current = LoadedModel(loaded, scorer, self.alias)
        self.last_error = None
        for listener in self.on_swap:
            listener(replaced, self.current)
        log.info("serving %s v%s (@%s, %s scorer)", name, version.version, self.alias, scorer.kind)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.serving_poll_seconds):
            try:
                self.refresh()
            except Exception as exc:  # keep serving the loaded model; report on /ready
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("model refresh failed: %s", self.last_error)

    def start(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the server starts unready and keeps trying
            self.last_error = f"{type(exc).__name__}: {exc}"
        self._thread = threading.Thread(target=self._loop, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
