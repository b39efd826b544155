"""One partition scored with the champion on point-in-time features, written as a predictions
partition: ``<batch_predictions_dir>/date=<key>/part.parquet``, replaced whole.

The features are the champion's feature service's as of each entity row's timestamp, never
later (``features.access.point_in_time_join``, equal to Feast's retrieval and faster on a
whole partition).

The file is written deterministically (rows sorted by key, a fixed schema, no write-time
values), so scoring a partition again in the same Airflow run gives the same bytes; another run
differs only in the ``airflow_run_id`` column. In the production profile the same rows also go
to Postgres (``table``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.usecases.vocabulary import partition_key

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from mlops_pipeline.deployment.loading import LoadedVersion
    from mlops_pipeline.serving.scorer import CompiledScorer
    from mlops_pipeline.usecases.spec import UseCaseSpec

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "part.parquet"
SCORE = "score"
DECISION = "decision"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
FEATURE_SERVICE = "feature_service"
AIRFLOW_RUN_ID = "airflow_run_id"
# Rows the model scores per call (see ``score_entities``).
PREDICT_CHUNK_ROWS = 200_000


class PartitionNotScorable(PermanentFailure):
    """The partition has no validated rows, or its rows got no features: nothing to score."""


@dataclass(frozen=True)
class Scorer:
    """What scores a partition: the loaded version and the feature service it was trained on."""

    model: LoadedVersion
    feature_service: str


@dataclass
class ScoringResult:
    date: str
    rows: int
    path: str
    sha256: str
    model_name: str
    model_version: str
    feature_service: str
    # mean, min, quantiles and max of the scores; the positive share for a classifier
    scores: dict[str, float] = field(default_factory=dict)
    table_rows: int | None = None  # rows in the Postgres table (production profile)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def asset_extra(self) -> dict[str, Any]:
        """The ``predictions`` asset event's ``extra``: the partition and the model version."""
        return {
            "date": self.date,
            "rows": self.rows,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "feature_service": self.feature_service,
            "sha256": self.sha256,
        }


def predictions_path(settings: Settings, partition: dt.date) -> Path:
    partition = settings.spec.cadence.partition_of(partition)
    return storage.partition_dir(settings.batch_predictions_dir, partition) / PREDICTIONS_FILE


def load_scorer(settings: Settings, tracking: Any = None) -> Scorer:
    """The champion, loaded as serving loads it, with the feature service its version was
    registered with (the declared one for a version without the tag). Raises ``NoChampion``."""
    from mlops_pipeline.deployment import registry
    from mlops_pipeline.deployment.loading import load_version
    from mlops_pipeline.scoring.readiness import champion_version

    tracking = tracking or registry.client(settings)
    version = champion_version(settings, tracking)
    model = load_version(tracking, settings.spec, version, registry.CHAMPION)
    service = (version.tags or {}).get(f"{registry.TAG_PREFIX}feature_service")
    return Scorer(model=model, feature_service=service or settings.spec.features.service)


def entity_rows(settings: Settings, partition: dt.date) -> pd.DataFrame:
    """The partition's validated entity rows: key and timestamp, sorted by key."""
    return entity_table(settings, partition).to_pandas()


def entity_table(settings: Settings, partition: dt.date) -> pa.Table:
    """``entity_rows`` as an Arrow table, sorted by key, then timestamp (the file's order)."""
    import pyarrow.parquet as pq

    spec = settings.spec
    folder = storage.partition_dir(settings.lake_dir, spec.cadence.partition_of(partition))
    if storage.read_manifest(folder) is None:
        raise PartitionNotScorable(
            f"no validated partition {partition_key(partition)} under {settings.lake_dir}"
        )
    rows = pq.read_table(folder, columns=[spec.entity.key, spec.timestamp])
    order = _key_order(rows.column(spec.entity.key), rows.column(spec.timestamp))
    return rows if order is None else rows.take(order)


def _key_order(keys: Any, times: Any) -> np.ndarray | None:
    """The rows' order by key, then timestamp (stable), or None when they are in it already."""
    import numpy as np
    import pyarrow as pa

    key_values = np.asarray(keys.to_numpy(), dtype=np.int64)
    time_values = times.cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()
    steps = np.diff(key_values)
    if not ((steps < 0) | ((steps == 0) & (np.diff(time_values) < 0))).any():
        return None
    return np.lexsort((time_values, key_values))


def predictions_table(
    spec: UseCaseSpec,
    keys: Any,
    times: Any,
    scores: np.ndarray,
    scorer: Scorer,
    airflow_run_id: str,
) -> pa.Table:
    """The predictions partition's rows, in the file's columns and types, sorted by entity key
    (then timestamp), from the rows' keys and timestamps (Arrow or pandas) and scores."""
    import numpy as np
    import pyarrow as pa

    key, ts = spec.entity.key, spec.timestamp
    keys = pa.chunked_array([pa.array(keys)]) if not isinstance(keys, pa.ChunkedArray) else keys
    times = pa.chunked_array([pa.array(times)]) if not isinstance(times, pa.ChunkedArray) else times
    if not pa.types.is_timestamp(times.type) or times.type.tz is None:
        # A timestamp without a zone is UTC, as the platform writes them.
        times = times.cast(pa.timestamp("ns")).cast(pa.timestamp("ns", "UTC"))
    nanoseconds = times.cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()
    score = np.asarray(scores, dtype=np.float64)
    order = _key_order(keys, times)
    key_values = np.asarray(keys.to_numpy(), dtype=np.int64)
    if order is not None:
        key_values, nanoseconds, score = key_values[order], nanoseconds[order], score[order]
    rows = len(score)
    columns: dict[str, pa.Array] = {
        key: pa.array(key_values, type=pa.int64()),
        # One unit whatever the join returned, so the file's schema never varies (floored,
        # as pandas' as_unit does).
        ts: pa.array(nanoseconds // 1000, type=pa.timestamp("us", "UTC")),
        SCORE: pa.array(score, type=pa.float64()),
    }
    if scorer.model.threshold is not None:
        # The model server's rule: positive at or above the version's threshold.
        columns[DECISION] = pa.array(score >= scorer.model.threshold, type=pa.bool_())
    for name, value in (
        (MODEL_NAME, scorer.model.name),
        (MODEL_VERSION, scorer.model.version),
        (FEATURE_SERVICE, scorer.feature_service),
        (AIRFLOW_RUN_ID, airflow_run_id),
    ):
        columns[name] = pa.repeat(pa.scalar(value, type=pa.string()), rows)
    return pa.table(columns)


def predictions_frame(
    spec: UseCaseSpec,
    features: pd.DataFrame,
    scores: np.ndarray,
    scorer: Scorer,
    airflow_run_id: str,
) -> pd.DataFrame:
    """``predictions_table`` of a frame's key and timestamp columns, as pandas."""
    import pandas as pd

    key, ts = spec.entity.key, spec.timestamp
    times = pd.to_datetime(features[ts], utc=True)
    return predictions_table(
        spec, features[key].to_numpy(dtype="int64"), times, scores, scorer, airflow_run_id
    ).to_pandas()


def write_predictions(path: Path, rows: pa.Table | pd.DataFrame) -> str:
    """Replace the partition's file with ``rows``; returns its SHA-256. Same rows, same bytes:
    no pandas index or metadata, one fixed codec, dictionary-encoded repeated strings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
    table = table.replace_schema_metadata(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=1_000_000)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.replace(path)
    return digest


def read_predictions(settings: Settings, partition: dt.date) -> pd.DataFrame | None:
    """The partition's batch predictions, or None when it was not scored."""
    import pandas as pd

    path = predictions_path(settings, partition)
    return pd.read_parquet(path) if path.exists() else None


def score_summary(scores: np.ndarray, decisions: np.ndarray | None) -> dict[str, float]:
    import numpy as np

    if len(scores) == 0:
        return {}
    quantiles = np.quantile(scores, [0.1, 0.5, 0.9])
    summary = {
        "mean": float(np.mean(scores)),
        "min": float(np.min(scores)),
        "p10": float(quantiles[0]),
        "p50": float(quantiles[1]),
        "p90": float(quantiles[2]),
        "max": float(np.max(scores)),
    }
    if decisions is not None:
        summary["positive_share"] = float(np.mean(decisions))
    return summary


def score_entities(
    settings: Settings,
    entities: pd.DataFrame,
    scorer: Scorer,
    airflow_run_id: str,
    timings: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Score entity rows (key, timestamp) on the scorer's feature service as of each row's
    timestamp: the predictions frame. ``timings`` gets the seconds of the join and of the
    model."""
    import pyarrow as pa

    spec = settings.spec
    key, ts = spec.entity.key, spec.timestamp
    rows = pa.Table.from_pandas(entities[[key, ts]], preserve_index=False)
    return score_table(settings, rows, scorer, airflow_run_id, timings).to_pandas()


def score_table(
    settings: Settings,
    entities: pa.Table,
    scorer: Scorer,
    airflow_run_id: str,
    timings: dict[str, float] | None = None,
) -> pa.Table:
    """``score_entities`` on an Arrow table of entity rows, giving the predictions table."""
    import time

    import numpy as np

    from mlops_pipeline.features.access import point_in_time_table

    spec = settings.spec
    key, ts = spec.entity.key, spec.timestamp
    timings = {} if timings is None else timings
    mark = time.perf_counter()
    order = _key_order(entities.column(key), entities.column(ts))
    # In the file's order from the start: the join keeps it, so nothing is sorted after.
    entities = entities.select([key, ts])
    entities = entities if order is None else entities.take(order)
    features = point_in_time_table(settings, entities, scorer.feature_service)
    timings["features"] = time.perf_counter() - mark
    if features.num_rows != entities.num_rows:
        raise PartitionNotScorable(
            f"the feature service {scorer.feature_service} returned {features.num_rows} rows "
            f"for {entities.num_rows} entity rows"
        )
    mark = time.perf_counter()
    scores = feature_scores(spec, scorer, features) if features.num_rows else np.empty(0)
    table = predictions_table(
        spec, features.column(key), features.column(ts), scores, scorer, airflow_run_id
    )
    timings["predict"] = time.perf_counter() - mark
    return table


def feature_scores(spec: UseCaseSpec, scorer: Scorer, features: pa.Table) -> np.ndarray:
    """The model's score of every row of ``features`` (``point_in_time_table``'s columns).

    The model's inputs are built from the Arrow columns as ``model_inputs`` and the pipeline's
    encoding make them, and scored by the compiled scorer's batch entry point (scikit-learn's
    tree predictors on them): the pipeline's own per-column conversions and its re-encoding of
    the categories cost more than its trees. Checked first, bit for bit, against the pipeline
    on the serving verification sample and on the partition's first rows; a model it cannot
    take, or any difference, is scored by the pipeline instead, in chunks."""
    import numpy as np

    compiled = _batch_scorer(spec, scorer.model.model)
    if compiled is not None and not _agrees(spec, scorer, compiled, features):
        log.warning("batch encoding differs from the pipeline: scoring with the pipeline")
        compiled = None
    parts = []
    # In chunks: the inputs' matrix and the model's copies of it then stay a chunk's size.
    for start in range(0, features.num_rows, PREDICT_CHUNK_ROWS):
        chunk = features.slice(start, PREDICT_CHUNK_ROWS)
        if compiled is None:
            parts.append(scorer.model.scores(_frame(chunk)))
        else:
            parts.append(compiled.score_matrix(model_matrix(spec, compiled, chunk)))
    return np.concatenate(parts) if parts else np.empty(0)


def _frame(features: pa.Table) -> pd.DataFrame:
    """``features`` as ``point_in_time_join`` gives them (plain strings, None when missing)."""
    from mlops_pipeline.features.access import decoded

    return decoded(features).to_pandas()


def _batch_scorer(spec: UseCaseSpec, model: Any) -> CompiledScorer | None:
    """The model's compiled scorer, when it takes the model and both its walk and its batch
    entry point match the pipeline on the serving verification sample, with its unknown
    categories and missing values (``serving.scorer.scorer_for`` checks both)."""
    from mlops_pipeline.serving.scorer import CompiledScorer, UnsupportedModel, scorer_for

    try:
        compiled = scorer_for(model, spec)
    except UnsupportedModel:
        return None
    return compiled if isinstance(compiled, CompiledScorer) and compiled.matrix_agrees else None


# Rows of the partition scored both ways before the batch path is trusted with the rest.
AGREEMENT_ROWS = 2_000


def _agrees(
    spec: UseCaseSpec, scorer: Scorer, compiled: CompiledScorer, features: pa.Table
) -> bool:
    """Whether the batch path scores the partition's first rows as the pipeline does, bit for
    bit: this encoding of these Arrow columns (``_batch_scorer`` checked the verification
    sample)."""
    import numpy as np

    from mlops_pipeline.serving.scorer import UnsupportedModel

    head = features.slice(0, AGREEMENT_ROWS)
    try:
        mine = compiled.score_matrix(model_matrix(spec, compiled, head))
    except UnsupportedModel:
        return False
    return bool(np.array_equal(mine, scorer.model.scores(_frame(head))))


def model_matrix(spec: UseCaseSpec, compiled: CompiledScorer, features: pa.Table) -> np.ndarray:
    """The model's inputs of ``features``' rows in the compiled scorer's layout (category
    codes, then the other inputs, as float64), with ``model_inputs``' conversions: a category
    is read as ``str`` of its value (a missing one as "None"), unknown -> NaN; a boolean's
    missing value is False; a number's is NaN."""
    import numpy as np

    categorical, categories, rest, booleans = compiled.layout
    matrix = np.empty((features.num_rows, len(categorical) + len(rest)), dtype=np.float64)
    for j, (name, values) in enumerate(zip(categorical, categories, strict=True)):
        matrix[:, j] = _category_codes(features.column(name), values)
    for j, name in enumerate(rest, start=len(categorical)):
        column = features.column(name)
        matrix[:, j] = _truths(column) if name in booleans else _numbers(column)
    return matrix


def _category_codes(column: Any, categories: list[Any]) -> np.ndarray:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    codes = {value: float(i) for i, value in enumerate(categories)}
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = pc.dictionary_encode(array)
    if pa.types.is_dictionary(array.type) and pa.types.is_string(array.type.value_type):
        lookup = np.array(
            [codes.get(str(v), np.nan) for v in array.dictionary.to_pylist()]
            + [codes.get("None", np.nan)]
        )
        return lookup[array.indices.fill_null(len(array.dictionary)).to_numpy()]
    # Anything else: exactly as model_inputs casts a pandas column.
    text = array.to_pandas().astype(str)
    return text.map(lambda v: codes.get(v, np.nan)).to_numpy(dtype=np.float64)


def _truths(column: Any) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    if pa.types.is_boolean(column.type):
        return column.fill_null(False).to_numpy().astype(np.float64)
    return column.to_pandas().astype(bool).to_numpy(dtype=np.float64)


def _numbers(column: Any) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    return np.asarray(column.cast(pa.float64()).to_numpy(), dtype=np.float64)


def score_partition(
    settings: Settings,
    partition: dt.date,
    airflow: dict[str, str] | None = None,
    scorer: Scorer | None = None,
) -> ScoringResult:
    """Score every entity of the validated ``partition`` with the champion (or ``scorer``) and
    replace its predictions partition (and, in production, its rows of the Postgres table).
    Raises ``NoChampion``, ``PartitionNotScorable``, ``MissingThreshold``."""
    import time

    spec = settings.spec
    partition = spec.cadence.partition_of(partition)
    key = partition_key(partition)
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    scorer = scorer or load_scorer(settings)
    entities = entity_table(settings, partition)
    timings["load"] = time.perf_counter() - mark

    run_id = (airflow or {}).get("run_id", "none")
    table = score_table(settings, entities, scorer, run_id, timings)

    mark = time.perf_counter()
    path = predictions_path(settings, partition)
    digest = write_predictions(path, table)
    table_rows = None
    if settings.profile == "production":
        from mlops_pipeline.scoring.table import predictions_database_url, replace_partition_rows

        table_rows = replace_partition_rows(
            predictions_database_url(settings), settings.predictions_table, spec, key, table
        )
    timings["write"] = time.perf_counter() - mark
    names = table.column_names
    decisions = table.column(DECISION).to_numpy() if DECISION in names else None
    return ScoringResult(
        date=key,
        rows=table.num_rows,
        path=str(path),
        sha256=digest,
        model_name=scorer.model.name,
        model_version=scorer.model.version,
        feature_service=scorer.feature_service,
        scores=score_summary(table.column(SCORE).to_numpy(), decisions),
        table_rows=table_rows,
        timings={k: round(v, 3) for k, v in timings.items()},
    )
