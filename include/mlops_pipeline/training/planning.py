"""When to train, and on which data window: the train DAG's planning step.

Reads what triggered the run (asset events or a manual request), the newest registered
version's data window and the validated partitions in the lake, and decides; counted in
partitions of the use case's cadence, never the wall clock, so re-runs decide alike.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.usecases.vocabulary import Cadence, partition_from_key, partition_key


@dataclass
class TrainingPlan:
    due: bool
    why: str
    window_end: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FEATURES_REASON = "features"
# The asset-event kinds that trigger training (see ``trigger_from_events``).
RETRAIN_REQUESTED = "retrain_requested"
FEATURES_ONLINE = "features_online"


def plan_training(
    settings: Settings,
    window_end: dt.date,
    reason: str,
    last_window_end: dt.date | None,
    partitions_available: int | None = None,
    partitions_needed: int = 0,
) -> TrainingPlan:
    """Whether to train now. Fresh features retrain at most every
    ``training.retrain_every_partitions`` partitions of data (measured on data windows, not
    the wall clock, so re-runs decide alike) and only once the window holds enough validated
    partitions to split; drift and manual requests always train (and fail loudly if the data
    cannot support them)."""
    if reason != FEATURES_REASON:
        return TrainingPlan(True, f"requested: {reason}", partition_key(window_end), reason)
    spec = settings.spec
    unit = f"{spec.cadence.value} partition(s)"
    if partitions_available is not None and partitions_available < partitions_needed:
        why = (
            f"waiting for data: {partitions_available} of {partitions_needed} validated "
            f"{unit} in the window"
        )
        return TrainingPlan(False, why, partition_key(window_end), reason)
    if last_window_end is None:
        return TrainingPlan(True, "no trained version yet", partition_key(window_end), reason)
    cadence = spec.cadence
    moved = (cadence.partition_of(window_end) - cadence.partition_of(last_window_end)) // (
        cadence.length
    )
    every = spec.training.retrain_every_partitions
    why = (
        f"data window moved {moved} {unit} since the last trained version "
        f"(training.retrain_every_partitions {every})"
    )
    return TrainingPlan(moved >= every, why, partition_key(window_end), reason)


def last_trained_window_end(settings: Settings) -> dt.date | None:
    """The data window end of the newest registered version, if any."""
    from mlflow.exceptions import MlflowException

    tracking = registry.client(settings)
    try:
        versions = tracking.search_model_versions(
            f"name='{settings.spec.model_name}'",
            order_by=["version_number DESC"],
            max_results=1,
        )
    except MlflowException:
        return None
    if not versions:
        return None
    value = versions[0].tags.get(f"{registry.TAG_PREFIX}data_window_end")
    return partition_from_key(value) if value else None


def trigger_from_events(
    extras_by_kind: dict[str, list[dict[str, Any]]],
    manual_window_end: str | None,
    manual_reason: str,
    run_after: dt.date,
    cadence: Cadence = Cadence.DAILY,
) -> tuple[dt.date, str]:
    """(window end, reason) for a run, from the triggering asset events' extras keyed by kind
    (``retrain_requested``: drift, ``features_online``: fresh features): drift requests win
    over feature updates; a manual run trains up to its ``window_end`` or the last partition
    of ``cadence`` completed before it runs."""
    drift = extras_by_kind.get(RETRAIN_REQUESTED) or []
    features = extras_by_kind.get(FEATURES_ONLINE) or []
    if drift:
        days = [e["date"] for e in drift if e.get("date")]
        reason = "drift: " + "; ".join(str(e.get("reason", "retrain requested")) for e in drift)
    elif features:
        days = [d for e in features for d in e.get("dates") or []]
        reason = FEATURES_REASON
    else:
        days = [manual_window_end] if manual_window_end else []
        reason = manual_reason
    window_end = (
        max(cadence.parse(d) for d in days)
        if days
        else cadence.partition_of(run_after) - cadence.length
    )
    return window_end, reason


def validated_partitions_in_window(
    settings: Settings, window_end: dt.date, window_partitions: int | None = None
) -> int:
    """Validated lake partitions in the window of ``window_partitions`` partitions (default:
    the declared window) ending with ``window_end``'s partition."""
    from mlops_pipeline.data import storage

    spec = settings.spec
    count = window_partitions or spec.training.split.window_partitions
    start = spec.cadence.partitions_back(window_end, count)
    window_end = spec.cadence.partition_of(window_end)
    return sum(start <= day <= window_end for day in storage.partition_days(settings.lake_dir))
