"""Materialize exactly a data interval into the online store, safely, and check the result.

Three traps of Feast-on-Airflow are handled here rather than left to the user:

- *Older backfill over newer values*: stores that compare event timestamps on write (Redis)
  keep the newer value by themselves; for stores that do not (SQLite), an interval that starts
  before what was already materialized is written through a guard that drops every row older
  than the value already online.
- *Future end dates*: an interval end after "now" is clipped, so it cannot make later
  incremental runs start in the future.
- *Re-applying definitions*: registration is fingerprint-gated (``feature_store``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.features.store import open_store
from mlops_pipeline.usecases.spec import Cadence
from mlops_pipeline.usecases.vocabulary import partition_key, partition_seed

# Online stores whose writes already refuse a value older than the stored one.
TIMESTAMP_GUARDED_STORES = {"redis"}


class NothingToMaterialize(PermanentFailure, ValueError):
    """The asked interval is empty, or no event names a partition: retrying changes nothing."""


class OnlineCheckFailed(PermanentFailure):
    """The online store does not serve the partition's values: deterministic, do not retry."""


@dataclass
class Materialization:
    start: str
    end: str
    clipped_end: bool
    feature_views: dict[str, str] = field(default_factory=dict)  # view -> "materialize"|"guarded"
    rows_skipped_as_older: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def days_interval(
    days: list[dt.date], cadence: Cadence = Cadence.DAILY
) -> tuple[dt.datetime, dt.datetime]:
    """The smallest interval covering the whole partitions of ``cadence`` that hold ``days``
    (UTC; a weekly partition runs from its Monday for seven days, an hourly one for an hour)."""
    return cadence.start(min(days)), cadence.start(max(days)) + cadence.length


def days_from_asset_extras(
    extras: list[dict[str, Any]], cadence: Cadence = Cadence.DAILY
) -> list[dt.date]:
    """The partitions of ``cadence`` named by a dataset's ``validated`` events (several may
    queue up)."""
    days = sorted({cadence.parse(extra["date"]) for extra in extras if extra.get("date")})
    if not days:
        raise NothingToMaterialize(f"no asset event names a date: {extras}")
    return days


def materialize_interval(
    settings: Settings,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime | None = None,
) -> Materialization:
    """Materialize ``[start - overlap, end)`` for every declared feature view."""
    now = now or dt.datetime.now(dt.UTC)
    clipped = end > now
    end = min(end, now)
    # The overlap only re-reads rows the previous interval already wrote (same timestamps), so
    # it does not make a forward run a backfill; where the interval itself starts decides.
    interval_start = start
    start = start - dt.timedelta(minutes=settings.materialize_overlap_minutes)
    if start >= end:
        raise NothingToMaterialize(f"empty interval after clipping to now: [{start}, {end})")
    store = open_store(settings)
    result = Materialization(start=start.isoformat(), end=end.isoformat(), clipped_end=clipped)
    store_type = store.config.online_store.type
    key = settings.spec.entity.key
    for name in settings.spec.feature_views:
        view = store.get_feature_view(name)
        materialized_until = max((e for _, e in view.materialization_intervals), default=None)
        backfill = materialized_until is not None and interval_start < materialized_until
        if backfill and store_type not in TIMESTAMP_GUARDED_STORES:
            result.feature_views[name] = "guarded"
            result.rows_skipped_as_older[name] = _guarded_write(store, view, key, start, end)
        else:
            result.feature_views[name] = "materialize"
            store.materialize(start_date=start, end_date=end, feature_views=[name])
    return result


def _guarded_write(store: Any, view: Any, key: str, start: dt.datetime, end: dt.datetime) -> int:
    """Feast's materialization step (latest row per entity in the interval, written online),
    minus every row older than what the online store already holds. Returns rows dropped."""
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    offline = get_offline_store_from_config(store.config.offline_store)
    source = view.batch_source
    latest = offline.pull_latest_from_table_or_query(
        config=store.config,
        data_source=source,
        join_key_columns=[key],
        feature_name_columns=[f.name for f in view.features],
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        start_date=start,
        end_date=end,
    ).to_df()
    if latest.empty:
        store.registry.apply_materialization(view, store.project, start, end)
        return 0
    probe = view.features[0].name
    online = store.get_online_features(
        features=[f"{view.name}:{probe}"],
        entity_rows=[{key: int(k)} for k in latest[key]],
    ).to_dict(include_event_timestamps=True)
    online_seconds = np.asarray(online[f"{probe}__ts"], dtype=np.int64)
    incoming_seconds = (
        pd.to_datetime(latest[source.timestamp_field], utc=True).astype("int64") // 10**9
    ).to_numpy()
    newer = incoming_seconds > online_seconds
    if newer.any():
        store.write_to_online_store(view.name, latest.loc[newer].reset_index(drop=True))
    store.registry.apply_materialization(view, store.project, start, end)
    return int((~newer).sum())


@dataclass
class OnlineCheck:
    day: str
    checked: int
    served_day_values: int
    served_newer_values: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_online(settings: Settings, day: dt.date) -> OnlineCheck:
    """Read a sample of the entities of the partition holding ``day`` back through the feature
    service: each must be served the partition's values, or values from a later snapshot (a
    later partition already online)."""
    spec = settings.spec
    key, features = spec.entity.key, spec.feature_columns
    day = spec.cadence.partition_of(day)
    partition = storage.partition_dir(settings.lake_dir, day)
    if not partition.exists():
        raise OnlineCheckFailed(f"no validated partition for {day}: {partition} does not exist")
    lake = pd.read_parquet(partition)
    if lake.empty:
        raise OnlineCheckFailed(f"no validated rows for {day} in {partition}")
    rng = np.random.default_rng(partition_seed(day))
    size = min(settings.online_check_sample, len(lake))
    sample = lake.iloc[np.sort(rng.choice(len(lake), size=size, replace=False))]
    store = open_store(settings)
    served = store.get_online_features(
        features=store.get_feature_service(spec.features.service),
        entity_rows=[{key: int(k)} for k in sample[key]],
    ).to_dict(include_event_timestamps=True)
    day_seconds = (sample[spec.timestamp].astype("int64") // 10**9).to_numpy()
    problems: list[str] = []
    same = newer = 0
    for position, entity in enumerate(sample[key]):
        row = sample.iloc[position]
        stamps = {served[f"{name}__ts"][position] for name in features}
        if stamps == {day_seconds[position]}:
            mismatched = [name for name in features if not _same(served[name][position], row[name])]
            if mismatched:
                problems.append(f"{key}={entity}: {mismatched} differ from the lake")
            else:
                same += 1
        elif min(stamps) > day_seconds[position]:
            newer += 1
        else:
            problems.append(
                f"{key}={entity}: served timestamps {sorted(stamps)} are older "
                f"than the partition's snapshot {day_seconds[position]}"
            )
    if problems:
        raise OnlineCheckFailed(
            f"online store check of {spec.features.service} for {day} failed for "
            f"{len(problems)} of {size} {spec.entity.name} entities: " + "; ".join(problems[:5])
        )
    return OnlineCheck(
        day=partition_key(day), checked=size, served_day_values=same, served_newer_values=newer
    )


def _same(served: Any, expected: Any) -> bool:
    if expected is None or (not isinstance(expected, str) and pd.isna(expected)):
        return served is None or (isinstance(served, float) and np.isnan(served))
    if isinstance(expected, float):
        return served is not None and abs(served - expected) <= 1e-9 * max(1.0, abs(expected))
    return served == (expected.item() if hasattr(expected, "item") else expected)


def materialized_ranges(settings: Settings) -> dict[str, Any]:
    """Per feature view of the use case's project: the materialized intervals' overall range
    (for ``status``). Embedded, nothing before the use case's registry file exists."""
    if not (settings.profile != "embedded" or (settings.feast_dir / "registry.db").exists()):
        return {}
    store = open_store(settings)
    ranges: dict[str, Any] = {}
    for view in store.list_feature_views():
        intervals = view.materialization_intervals
        ranges[view.name] = {
            "from": min(s for s, _ in intervals).isoformat() if intervals else None,
            "to": max(e for _, e in intervals).isoformat() if intervals else None,
            "intervals": len(intervals),
        }
    return ranges
