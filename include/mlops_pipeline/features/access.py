"""Feature access for training and serving, both through the use case's feature service.

Training sets are point-in-time correct: each labelled entity row gets the feature values as
of its own timestamp (never later), within each view's TTL. Serving reads the same features
from the online store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.features.store import open_store
from mlops_pipeline.usecases.loader import UseCase
from mlops_pipeline.usecases.vocabulary import partition_from_key, partition_key


def entity_columns(spec: UseCase) -> list[str]:
    """The columns of a training set's entity rows: key, event timestamp, label."""
    return [spec.entity.key, spec.timestamp, spec.label]


class NotEnoughData(PermanentFailure, ValueError):
    """The window holds no validated partitions: deterministic, do not retry."""


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    feature_service: str
    days: list[dt.date]
    # One manifest per validated partition used: validation id, content hash, counts.
    partitions: list[dict[str, Any]] = field(default_factory=list)
    # The entity rows' columns (key, timestamp, label); every other column is a feature.
    entity_columns: tuple[str, ...] = ()

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in self.entity_columns]


def _entity_days(
    settings: Settings, start: dt.date, end: dt.date
) -> list[tuple[pd.DataFrame, dict[str, Any]]]:
    """(labelled entity rows, manifest) of each validated partition dated in ``[start, end]``,
    oldest first. Partitions that failed validation do not exist and contribute nothing."""
    columns = entity_columns(settings.spec)
    cadence = settings.spec.cadence
    start, end = cadence.partition_of(start), cadence.partition_of(end)
    days = []
    for day in storage.partition_days(settings.lake_dir):
        if start <= day <= end:
            partition = storage.partition_dir(settings.lake_dir, day)
            rows = pq.read_table(partition, columns=columns).to_pandas()
            days.append((rows, storage.read_manifest(partition) or {"date": partition_key(day)}))
    if not days:
        raise NotEnoughData(
            f"no validated partitions of {settings.spec.dataset} between {start} and {end} "
            f"under {settings.lake_dir}"
        )
    return days


def _consecutive_chunks(
    days: list[tuple[pd.DataFrame, dict[str, Any]]], max_rows: int
) -> list[pd.DataFrame]:
    """The days' entity rows joined into runs of consecutive days of at most ``max_rows``
    rows each (a day larger than that is a run of its own)."""
    chunks: list[list[pd.DataFrame]] = []
    rows_in_chunk = 0
    for rows, _ in days:
        if not chunks or rows_in_chunk + len(rows) > max_rows:
            chunks.append([])
            rows_in_chunk = 0
        chunks[-1].append(rows)
        rows_in_chunk += len(rows)
    return [pd.concat(chunk, ignore_index=True) for chunk in chunks]


def build_training_set(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    feature_service: str | None = None,
) -> TrainingSet:
    """The point-in-time correct training frame for the partitions dated ``[start, end]``:
    entity rows with their labels, joined by Feast to the service's features (the declared
    ``features.service`` unless named) as of each row's timestamp.

    Each entity row's features depend only on its own key and timestamp, so the join is done
    for runs of consecutive partitions (``training.set_chunk_rows`` rows at most) and the
    results concatenated: the same rows as one join, with the memory of Feast's Python
    on-demand view bounded by the run instead of the window (figures: README, training set)."""
    spec = settings.spec
    feature_service = feature_service or spec.features.service
    days = _entity_days(settings, start, end)
    store = open_store(settings)
    service = store.get_feature_service(feature_service)
    frame = pd.concat(
        [
            store.get_historical_features(entity_df=entities, features=service).to_df()
            for entities in _consecutive_chunks(days, spec.training.set_chunk_rows)
        ],
        ignore_index=True,
    )
    # Feast returns rows in no guaranteed order; training must be reproducible.
    frame = frame.sort_values([spec.timestamp, spec.entity.key], kind="stable")
    manifests = [manifest for _, manifest in days]
    return TrainingSet(
        frame=frame.reset_index(drop=True),
        feature_service=feature_service,
        days=[partition_from_key(m["date"]) for m in manifests],
        partitions=manifests,
        entity_columns=tuple(entity_columns(spec)),
    )


def point_in_time_features(
    settings: Settings,
    entities: pd.DataFrame,
    feature_service: str | None = None,
    chunk_rows: int | None = None,
) -> pd.DataFrame:
    """The service's features (the declared ``features.service`` unless named) for each entity
    row (key and timestamp columns) as of the row's own timestamp, never later, within each
    view's TTL: the join a training set is built with, for rows without labels (batch scoring).

    Joined ``chunk_rows`` rows at a time (``training.set_chunk_rows`` by default) for the same
    reason as a training set; rows come back sorted by timestamp and key."""
    spec = settings.spec
    chunk_rows = chunk_rows or spec.training.set_chunk_rows
    store = open_store(settings)
    service = store.get_feature_service(feature_service or spec.features.service)
    parts = [
        store.get_historical_features(
            entity_df=entities.iloc[start : start + chunk_rows].reset_index(drop=True),
            features=service,
        ).to_df()
        for start in range(0, len(entities), chunk_rows)
    ]
    if not parts:
        return entities.iloc[0:0].copy()
    frame = pd.concat(parts, ignore_index=True)
    # Feast returns rows in no guaranteed order.
    frame = frame.sort_values([spec.timestamp, spec.entity.key], kind="stable")
    return frame.reset_index(drop=True)


def point_in_time_join(
    settings: Settings, entities: pd.DataFrame, feature_service: str | None = None
) -> pd.DataFrame:
    """``point_in_time_features`` computed by DuckDB directly, for scoring whole partitions.

    The same join, read from the registered service: for each of its feature views, the
    latest source row of the entity at or before the entity row's timestamp (an ASOF join),
    dropped when older than the view's TTL; then the declared on-demand outputs from the use
    case's own functions, as Feast's Python-mode views compute them. Only the lake partitions
    a TTL can reach are read. Equal to Feast's retrieval value for value (tested on rows
    inside, past and before the TTL), and several times faster on a partition (figures:
    README, batch scoring). Rows come back sorted by
    timestamp and key."""
    import duckdb
    import numpy as np

    from mlops_pipeline.features.on_demand import add_on_demand_features

    spec = settings.spec
    key, ts = spec.entity.key, spec.timestamp
    store = open_store(settings)
    service = store.get_feature_service(feature_service or spec.features.service)
    frame = entities[[key, ts]].copy()
    frame[ts] = pd.to_datetime(frame[ts], utc=True)
    frame = frame.sort_values([ts, key], kind="stable").reset_index(drop=True)
    if frame.empty:
        return frame
    con = duckdb.connect()
    # DuckDB draws a progress bar on stdout for a long query: not in task logs or bench output.
    con.execute("SET enable_progress_bar = false")
    con.register("entities", frame.assign(__row=np.arange(len(frame))))
    first, last = frame[ts].min(), frame[ts].max()
    on_demand = set(spec.features.on_demand)
    cadence = spec.cadence
    # One join per view rather than one for all: the result of a join of every feature at once
    # raised the peak memory of a partition's scoring by a quarter (README, batch scoring).
    for projection in service.feature_view_projections:
        if projection.name in on_demand:
            continue
        names = [feature.name for feature in projection.features]
        ttl = store.get_feature_view(projection.name).ttl or None
        oldest = first - ttl if ttl else None
        files = [
            str(path)
            for day in storage.partition_days(settings.lake_dir)
            if (oldest is None or cadence.start(day) + cadence.length > oldest)
            and cadence.start(day) <= last
            for path in sorted(storage.partition_dir(settings.lake_dir, day).glob("*.parquet"))
        ]
        if not files:
            for name in names:
                frame[name] = None
            continue
        joined = con.execute(
            f"""
            SELECT {", ".join(f'f."{name}"' for name in names)}, f."{ts}" AS __feature_ts
            FROM entities e ASOF LEFT JOIN (
                SELECT "{key}", "{ts}", {", ".join(f'"{name}"' for name in names)}
                FROM read_parquet($files, union_by_name = true)
            ) f ON e."{key}" = f."{key}" AND e."{ts}" >= f."{ts}"
            ORDER BY e.__row
            """,
            {"files": files},
        ).df()
        feature_ts = pd.to_datetime(joined.pop("__feature_ts"), utc=True)
        fresh = feature_ts.notna().to_numpy()
        if ttl:
            fresh &= (feature_ts >= frame[ts] - ttl).to_numpy()
        for name in names:
            frame[name] = _kept(joined[name], fresh)
    if spec.features.on_demand:
        frame = _with_on_demand(spec, frame, add_on_demand_features)
    return frame


def _kept(values: pd.Series, fresh: Any) -> pd.Series:
    """``values`` where ``fresh``, missing elsewhere: NaN for a number, None for a bool or a
    string, as Feast leaves them (NaN would read as True)."""
    if fresh.all():
        return values
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.where(fresh)
    return values.astype(object).where(fresh, None)


# Rows per call of a use case's on-demand function in a batch join: its inputs are Python
# lists, several objects per value, so a whole partition's at once would dwarf the frame.
ON_DEMAND_CHUNK_ROWS = 100_000


def _with_on_demand(spec: UseCase, frame: pd.DataFrame, add: Any) -> pd.DataFrame:
    """``frame`` with the declared on-demand outputs, computed ``ON_DEMAND_CHUNK_ROWS`` rows at
    a time from lists with None for a missing value (what Feast's Python mode passes)."""
    present = [name for name in spec.feature_columns if name in frame]
    outputs: dict[str, list[Any]] = {name: [] for name in spec.on_demand_features}
    for start in range(0, len(frame), ON_DEMAND_CHUNK_ROWS):
        chunk = frame.iloc[start : start + ON_DEMAND_CHUNK_ROWS]
        inputs = {
            name: (
                chunk[name].astype(object).where(chunk[name].notna(), None)
                if chunk[name].hasnans
                else chunk[name]
            ).tolist()
            for name in present
        }
        derived = add(spec, inputs)
        for name in outputs:
            outputs[name].extend(derived[name])
    for name, values in outputs.items():
        frame[name] = values
    return frame


# Value kinds that OnlineResponse.to_dict returns as they are (nothing to parse or wrap).
_PLAIN_VALUE_KINDS = frozenset(
    {"int32_val", "int64_val", "float_val", "double_val", "string_val", "bool_val"}
)


class OnlineFeatureReader:
    """Reads the service's features for entities from the online store (used by serving).
    Holds one store so repeated reads do not re-open registry and connections."""

    def __init__(self, settings: Settings, feature_service: str | None = None) -> None:
        from feast.value_type import ValueType

        spec = settings.spec
        self.entity_key = spec.entity.key
        self.store = open_store(settings)
        self.service = self.store.get_feature_service(feature_service or spec.features.service)
        plain_types = {
            ValueType.INT32,
            ValueType.INT64,
            ValueType.FLOAT,
            ValueType.DOUBLE,
            ValueType.STRING,
            ValueType.BOOL,
        }
        self._all_plain = all(
            feature.dtype.to_value_type() in plain_types
            for projection in self.service.feature_view_projections
            for feature in projection.features
        )

    def read(self, ids: Sequence[int]) -> dict[str, list[Any]]:
        """Column name -> values (the entity key's column included), in ``ids`` order;
        unknown entities get None."""
        key = self.entity_key
        response = self.store.get_online_features(
            features=self.service, entity_rows=[{key: int(k)} for k in ids]
        )
        if not self._all_plain:
            return response.to_dict()
        return _plain_columns(response)


def _plain_columns(response: Any) -> dict[str, list[Any]]:
    """``OnlineResponse.to_dict()`` for a service whose features are all plain scalars.

    Equal to it value for value: for these kinds Feast returns the proto's field as it is and
    None for an unset value, but it first tries some twenty other kinds per value, the larger
    part of a many-entity read's conversion. Anything else still goes through Feast."""
    from feast.type_map import feast_value_type_to_python_type

    proto = response.proto
    columns: dict[str, list[Any]] = {}
    for name, vector in zip(proto.metadata.feature_names.val, proto.results, strict=True):
        values: list[Any] = []
        for value in vector.values:
            kind = value.WhichOneof("val")
            if kind is None:
                values.append(None)
            elif kind in _PLAIN_VALUE_KINDS:
                values.append(getattr(value, kind))
            else:
                values.append(feast_value_type_to_python_type(value))
        columns[name] = values
    return columns
