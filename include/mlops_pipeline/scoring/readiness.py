"""Whether a partition can be scored: its rows validated, its features materialized, and a
champion to score them with.

A missing champion is a permanent failure (waiting would not promote one); the other two are
states the scoring DAG waits out, since ingestion and materialization run on their own
schedules and may still be on their way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.usecases.vocabulary import partition_key


class NoChampion(PermanentFailure):
    """The use case has no champion: nothing to score with until a version is promoted."""


def covers(
    intervals: Iterable[tuple[dt.datetime, dt.datetime]], start: dt.datetime, end: dt.datetime
) -> bool:
    """Whether the union of ``intervals`` covers ``[start, end)`` (materialization intervals
    of one feature view, which overlap and arrive in any order)."""
    reached = start
    for first, last in sorted((_utc(a), _utc(b)) for a, b in intervals):
        if first > reached:
            break
        reached = max(reached, last)
        if reached >= end:
            return True
    return reached >= end


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def champion_version(settings: Settings, tracking: Any) -> Any:
    """The registry's version entity behind the ``champion`` alias. Raises ``NoChampion``."""
    from mlops_pipeline.deployment import registry

    version = registry.version_for_alias(tracking, settings.spec.model_name, registry.CHAMPION)
    if version is None:
        raise NoChampion(
            f"{settings.spec.model_name} has no {registry.CHAMPION} alias: promote a version "
            "before scoring partitions with it"
        )
    return version


def not_ready_reason(settings: Settings, partition: dt.date) -> str | None:
    """Why ``partition`` cannot be scored yet (None once it can): no validated partition in
    the lake, or a feature view of the service not materialized over the partition's
    interval."""
    from mlops_pipeline.features.store import open_store

    spec = settings.spec
    partition = spec.cadence.partition_of(partition)
    key = partition_key(partition)
    folder = storage.partition_dir(settings.lake_dir, partition)
    if storage.read_manifest(folder) is None:
        return f"no validated partition {key} of {spec.dataset} under {settings.lake_dir}"
    if settings.profile == "embedded" and not (settings.feast_dir / "registry.db").exists():
        return f"no Feast registry for {spec.name} yet: features were never materialized"
    start = spec.cadence.start(partition)
    end = start + spec.cadence.length
    store = open_store(settings)
    missing = [
        name
        for name in spec.feature_views
        if not covers(store.get_feature_view(name).materialization_intervals, start, end)
    ]
    if missing:
        return (
            f"feature view(s) {', '.join(missing)} not materialized over {key} "
            f"([{start.isoformat()}, {end.isoformat()}))"
        )
    return None
