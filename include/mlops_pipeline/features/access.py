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
    """``point_in_time_features`` computed directly (``point_in_time_table``), for scoring
    whole partitions: equal to Feast's retrieval value for value (tested on rows inside, past
    and before the TTL) and several times faster on a partition (figures: docs/performance.md,
    batch scoring). Rows come back sorted by timestamp and key."""
    import pyarrow as pa

    spec = settings.spec
    key, ts = spec.entity.key, spec.timestamp
    frame = entities[[key, ts]].copy()
    frame[ts] = pd.to_datetime(frame[ts], utc=True)
    frame = frame.sort_values([ts, key], kind="stable").reset_index(drop=True)
    if frame.empty:
        return frame
    table = point_in_time_table(
        settings, pa.Table.from_pandas(frame, preserve_index=False), feature_service
    )
    return decoded(table).to_pandas()


def point_in_time_table(
    settings: Settings, entities: Any, feature_service: str | None = None
) -> Any:
    """The service's features (the declared ``features.service`` unless named) of each entity
    row of ``entities`` (an Arrow table with the key and timestamp columns) as of the row's own
    timestamp, never later, within each view's TTL, as Feast's retrieval gives them: an Arrow
    table of the entity columns, then every feature, in the rows' order. Category strings stay
    dictionary-encoded as the lake stores them (``decoded`` turns them into plain strings).

    For each row, the latest source row of its entity at or before its timestamp (one ASOF
    join in DuckDB on keys, times and row numbers only, since every view reads the same
    lake); a view's values of it are kept when it is within that view's TTL. Then the
    declared on-demand outputs from the use case's own functions, as Feast's Python-mode
    views compute them. Only the lake partitions a TTL can reach are read."""
    import numpy as np
    import pyarrow as pa

    from mlops_pipeline.features.on_demand import add_on_demand_features

    spec = settings.spec
    key, ts = spec.entity.key, spec.timestamp
    store = open_store(settings)
    service = store.get_feature_service(feature_service or spec.features.service)
    on_demand = set(spec.features.on_demand)
    views = [
        (
            [feature.name for feature in projection.features],
            store.get_feature_view(projection.name).ttl or None,
        )
        for projection in service.feature_view_projections
        if projection.name not in on_demand
    ]
    rows = entities.num_rows
    columns: dict[str, Any] = {key: entities.column(key), ts: entities.column(ts)}
    if rows == 0:
        return pa.table(columns)
    times = _nanoseconds(entities.column(ts))
    wanted = [name for names, _ in views for name in names]
    source = _source_rows(settings, views, int(times.min()), int(times.max()), [key, ts, *wanted])
    match = np.full(rows, -1, dtype=np.int64)
    found_times = None
    if source is not None and source.num_rows:
        source_times = _nanoseconds(source.column(ts))
        match = _latest_at_or_before(entities.column(key), times, source.column(key), source_times)
        found_times = source_times[np.maximum(match, 0)]
    found = match >= 0
    for names, ttl in views:
        fresh = found.copy()
        if ttl and found_times is not None:
            fresh &= found_times >= times - ttl // dt.timedelta(microseconds=1) * 1000
        indices = pa.array(match, mask=~fresh)
        for name in names:
            present = source is not None and name in source.column_names
            columns[name] = source.column(name).take(indices) if present else pa.nulls(rows)
    table = pa.table(columns)
    if spec.features.on_demand:
        table = _with_on_demand(spec, table, add_on_demand_features)
    return table


def decoded(table: Any) -> Any:
    """``table`` with its dictionary-encoded columns as plain values (what pandas gets as
    strings with None, as Feast returns them)."""
    import pyarrow as pa

    for index, column_field in enumerate(table.schema):
        if pa.types.is_dictionary(column_field.type):
            column = table.column(index).cast(column_field.type.value_type)
            table = table.set_column(index, column_field.name, column)
    return table


def _nanoseconds(times: Any) -> Any:
    """UTC nanoseconds of a timestamp column, as int64 (whatever its unit)."""
    import pyarrow as pa

    return times.cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()


def _source_rows(
    settings: Settings,
    views: list[tuple[list[str], dt.timedelta | None]],
    first: int,
    last: int,
    columns: list[str],
) -> Any:
    """The ``columns`` (those present) of the lake partitions some view's TTL reaches from
    entity rows timed ``first`` to ``last`` (UTC nanoseconds): None when there are none. The
    strings as the files store them, dictionary-encoded."""
    import pyarrow as pa

    cadence = settings.spec.cadence
    ttls = [ttl for _, ttl in views]
    oldest = None if not ttls or None in ttls else pd.Timestamp(first, tz="UTC") - max(ttls)  # type: ignore[type-var]
    newest = pd.Timestamp(last, tz="UTC")
    tables = []
    for day in storage.partition_days(settings.lake_dir):
        start = cadence.start(day)
        if (oldest is not None and start + cadence.length <= oldest) or start > newest:
            continue
        for path in sorted(storage.partition_dir(settings.lake_dir, day).glob("*.parquet")):
            schema = pq.read_schema(path)
            present = [name for name in columns if name in schema.names]
            strings = [
                name
                for name in present
                if pa.types.is_string(schema.field(name).type)
                or pa.types.is_large_string(schema.field(name).type)
            ]
            tables.append(pq.read_table(path, columns=present, read_dictionary=strings))
    if not tables:
        return None
    # Columns a file lacks (added to the dataset later) are missing in its rows.
    return pa.concat_tables(tables, promote_options="permissive").unify_dictionaries()


def _latest_at_or_before(keys: Any, times: Any, source_keys: Any, source_times: Any) -> Any:
    """For each (key, time), the index of the latest source row of that key timed at or before
    it, -1 for none: an ASOF join in DuckDB on the keys, times (int64 nanoseconds) and row
    numbers alone, so no feature value goes through the join."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    rows = len(times)
    source = pa.table(
        {
            "k": source_keys,
            "t": source_times,
            "i": np.arange(len(source_keys), dtype=np.int64),
        }
    )
    con = duckdb.connect()
    # DuckDB draws a progress bar on stdout for a long query: not in task logs or bench output.
    con.execute("SET enable_progress_bar = false")
    con.register("entity_times", pa.table({"k": keys, "t": times, "j": np.arange(rows)}))
    con.register("source_times", source)
    found = con.execute(
        """
        SELECT e.j, s.i FROM entity_times e ASOF JOIN source_times s
        ON e.k = s.k AND e.t >= s.t
        """
    ).fetchnumpy()
    con.close()
    match = np.full(rows, -1, dtype=np.int64)
    match[np.asarray(found["j"])] = np.asarray(found["i"])
    return match


# Rows per call of a use case's on-demand function in a batch join: its inputs are Python
# lists, several objects per value, so a whole partition's at once would dwarf the frame.
ON_DEMAND_CHUNK_ROWS = 100_000


def _with_on_demand(spec: UseCase, table: Any, add: Any) -> Any:
    """``table`` with the declared on-demand outputs, computed ``ON_DEMAND_CHUNK_ROWS`` rows at
    a time from lists with None for a missing value (what Feast's Python mode passes)."""
    import pyarrow as pa

    present = [name for name in spec.feature_columns if name in table.column_names]
    outputs: dict[str, list[Any]] = {name: [] for name in spec.on_demand_features}
    for start in range(0, table.num_rows, ON_DEMAND_CHUNK_ROWS):
        chunk = table.slice(start, ON_DEMAND_CHUNK_ROWS)
        derived = add(spec, {name: python_values(chunk.column(name)) for name in present})
        for name in outputs:
            outputs[name].extend(derived[name])
    for name, values in outputs.items():
        # NaN and None alike are a missing value, as pandas reads them.
        table = table.append_column(name, pa.array(values, from_pandas=True))
    return table


def python_values(column: Any) -> list[Any]:
    """An Arrow column as a Python list, None for a missing value (NaN included)."""
    import numpy as np
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = array.type
    if pa.types.is_dictionary(kind):
        values = np.array([*array.dictionary.to_pylist(), None], dtype=object)
        return values[array.indices.fill_null(len(array.dictionary)).to_numpy()].tolist()
    if pa.types.is_floating(kind):
        numbers = array.to_numpy(zero_copy_only=False)
        missing = np.isnan(numbers)
        if not missing.any():
            return numbers.tolist()
        boxed = numbers.astype(object)
        boxed[missing] = None
        return boxed.tolist()
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        if array.null_count == 0:
            return array.to_numpy(zero_copy_only=False).tolist()
        boxed = (
            array.fill_null(False if pa.types.is_boolean(kind) else 0)
            .to_numpy(zero_copy_only=False)
            .astype(object)
        )
        boxed[array.is_null().to_numpy(zero_copy_only=False)] = None
        return boxed.tolist()
    return array.to_pylist()


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
