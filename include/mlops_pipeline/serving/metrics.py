"""The model server's Prometheus metrics, for one process or summed over uvicorn workers.

With more than one worker, ``mlops-pipeline serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory before the workers start; prometheus_client then keeps every worker's values in
files there and ``/metrics`` (answered by any one worker) reads them all.

Importing ``feast.metrics`` also sets that variable (to a directory of its own) when it is unset,
so whether values live in files is read off prometheus_client itself, not off the environment."""

from __future__ import annotations

import contextlib
import glob
import os
import re

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
MODEL_INFO = "mlops_model_info"


class Metrics:
    """Every metric carries ``model`` (the registered model's name), so the servers of all
    use cases share one set of names on one dashboard."""

    def __init__(self, model: str, classifier: bool) -> None:
        in_files = getattr(values.ValueClass, "_multiprocess", False)
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_DIR_ENV) if in_files else None
        if self.multiprocess_dir:
            forget_dead_workers(self.multiprocess_dir)
        self.model = model
        self.registry = CollectorRegistry()
        self.predict_latency = Histogram(
            "mlops_predict_latency_seconds",
            "Latency of /predict requests.",
            ["model"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        ).labels(model=model)
        # Classifiers count predictions by decision; a regressor has no decision.
        predictions = Counter(
            "mlops_predictions_total",
            "Rows scored (classifiers: by decision).",
            ["model", "decision"] if classifier else ["model"],
            registry=self.registry,
        )
        if classifier:
            self._positive = predictions.labels(model=model, decision="true")
            self._negative = predictions.labels(model=model, decision="false")
        else:
            self._rows = predictions.labels(model=model)
        # Count and sum of the scores: their mean over time (a probability or the predicted
        # value) without assuming the scale a histogram's buckets would need.
        self._scores = Summary(
            "mlops_prediction_score",
            "Scores served: the positive class' probability or the predicted value.",
            ["model"],
            registry=self.registry,
        ).labels(model=model)
        # 1 while some worker serves that version, 0 once none does (an Info metric cannot be
        # shared between processes).
        self._model = Gauge(
            MODEL_INFO,
            "The model being served: 1 while a worker serves this version.",
            ["model", "alias", "version"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        # The live shadow (``serving.shadow``), by challenger version.
        self._shadow_latency = Histogram(
            "mlops_shadow_latency_seconds",
            "Time the challenger took to score one request alone, in shadow (a sample of the "
            "requests: the others are scored in batches).",
            ["model", "version"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self._shadow_rows = Counter(
            "mlops_shadow_predictions_total",
            "Rows the challenger scored in shadow.",
            ["model", "version"],
            registry=self.registry,
        )
        self._shadow_errors = Counter(
            "mlops_shadow_errors_total",
            "Requests the challenger failed to score in shadow.",
            ["model", "version"],
            registry=self.registry,
        )
        self._shadow_dropped = Counter(
            "mlops_shadow_dropped_total",
            "Rows not scored in shadow: the shadow process could not take them (behind, or "
            "gone; shadow traffic is best-effort).",
            ["model", "version"],
            registry=self.registry,
        )

    def shadow_scored(self, version: str, rows: int) -> None:
        self._shadow_rows.labels(self.model, version).inc(rows)

    def shadow_timed(self, version: str, seconds: float) -> None:
        self._shadow_latency.labels(self.model, version).observe(seconds)

    def shadow_dropped(self, version: str, rows: int) -> None:
        self._shadow_dropped.labels(self.model, version).inc(rows)

    def shadow_failed(self, version: str, requests: int = 1) -> None:
        self._shadow_errors.labels(self.model, version).inc(requests)

    def predicted(self, scores: np.ndarray, decisions: np.ndarray | None) -> None:
        """Count a scored batch (``decisions``: a classifier's, else None)."""
        if decisions is not None:
            positives = int(decisions.sum())
            self._positive.inc(positives)
            self._negative.inc(len(decisions) - positives)
        else:
            self._rows.inc(len(scores))
        for score in scores.tolist():
            self._scores.observe(score)

    def serving(self, alias: str, version: str, replaced: str | None) -> None:
        """Record that this process now serves ``version`` (instead of ``replaced``)."""
        if replaced is not None and replaced != version:
            # Set to 0, not removed: another worker may still report it (livemax).
            self._model.labels(self.model, alias, replaced).set(0)
        self._model.labels(self.model, alias, version).set(1)

    def exposition(self) -> bytes:
        if not self.multiprocess_dir:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)


def forget_dead_workers(directory: str) -> None:
    """Drop the gauges of workers that died (uvicorn replaces a crashed worker); their
    counters and histograms stay in the sums, as Prometheus expects of counters."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        match = re.search(r"_(\d+)\.db$", path)
        if match and not _alive(int(match.group(1))):
            # Another server starting in the same directory may be removing the same files.
            with contextlib.suppress(FileNotFoundError):
                mark_process_dead(int(match.group(1)), directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def served_versions(exposition: str, alias: str) -> set[str]:
    """The versions under ``alias`` that some worker serves, read from a ``/metrics`` page
    (one server serves one use case's model)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        sample.labels["version"]
        for family in text_string_to_metric_families(exposition)
        if family.name == MODEL_INFO
        for sample in family.samples
        if sample.labels.get("alias") == alias and sample.value == 1
    }
