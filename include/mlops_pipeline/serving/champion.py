"""The served model: loaded by alias, swapped atomically when the alias moves."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.serving.scorer import Scorer, scorer_for
from mlops_pipeline.usecases.spec import UseCaseSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str
    threshold: float | None  # classifiers: the decision threshold; None for a regressor
    model: Any  # the scikit-learn model, on ``training.model_inputs``
    scorer: Scorer  # how requests are scored: the model, compiled when that is exact
    loaded_at: str
    run_id: str


class MissingThreshold(PermanentFailure):
    """A classifier's registered version carries no decision threshold."""


def version_threshold(spec: UseCaseSpec, tags: dict[str, str], version: str) -> float | None:
    """The decision threshold, read from one place: the version's tag, set at registration
    (chosen on the validation partitions). A regressor has none."""
    if not spec.is_classifier:
        return None
    tag = f"{registry.TAG_PREFIX}threshold"
    if tag not in tags:
        raise MissingThreshold(f"{spec.model_name} v{version} has no {tag} tag")
    return float(tags[tag])


class ChampionWatcher:
    """Holds the current model; a background thread re-reads the alias every
    ``poll_seconds`` and loads a new version *before* swapping the reference, so requests
    always see a complete model (the old one until the new one is ready)."""

    def __init__(self, settings: Settings, alias: str = registry.CHAMPION) -> None:
        self.settings = settings
        self.alias = alias
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        # Called with (replaced, loaded) after every swap, on the thread that swapped.
        self.on_swap: list[Callable[[LoadedModel | None, LoadedModel], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load the alias' version if it changed; returns whether a swap happened."""
        import mlflow

        tracking = registry.client(self.settings)
        spec = self.settings.spec
        name = spec.model_name
        version = registry.version_for_alias(tracking, name, self.alias)
        if version is None:
            self.last_error = f"{name} has no @{self.alias} yet"
            return False
        if self.current is not None and self.current.version == str(version.version):
            return False
        model = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
        scorer = scorer_for(model, spec)
        threshold = version_threshold(spec, version.tags, str(version.version))
        replaced = self.current
        self.current = LoadedModel(
            name=name,
            version=str(version.version),
            alias=self.alias,
            threshold=threshold,
            model=model,
            scorer=scorer,
            loaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            run_id=version.run_id,
        )
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
