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

    from mlops_pipeline.deployment.loading import LoadedVersion
    from mlops_pipeline.usecases.spec import UseCaseSpec

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
    import pyarrow.parquet as pq

    spec = settings.spec
    folder = storage.partition_dir(settings.lake_dir, spec.cadence.partition_of(partition))
    if storage.read_manifest(folder) is None:
        raise PartitionNotScorable(
            f"no validated partition {partition_key(partition)} under {settings.lake_dir}"
        )
    rows = pq.read_table(folder, columns=[spec.entity.key, spec.timestamp]).to_pandas()
    return rows.sort_values(spec.entity.key, kind="stable").reset_index(drop=True)


def predictions_frame(
    spec: UseCaseSpec,
    features: pd.DataFrame,
    scores: np.ndarray,
    scorer: Scorer,
    airflow_run_id: str,
) -> pd.DataFrame:
    """The predictions partition's rows, in the file's column order, sorted by entity key."""
    import numpy as np
    import pandas as pd

    key, ts = spec.entity.key, spec.timestamp
    columns: dict[str, Any] = {
        key: features[key].to_numpy(dtype="int64"),
        # One unit whatever the join returned, so the file's schema never varies.
        ts: pd.DatetimeIndex(pd.to_datetime(features[ts], utc=True)).as_unit("us"),
        SCORE: np.asarray(scores, dtype="float64"),
    }
    if scorer.model.threshold is not None:
        # The model server's rule: positive at or above the version's threshold.
        columns[DECISION] = columns[SCORE] >= scorer.model.threshold
    frame = pd.DataFrame(columns).assign(
        **{
            MODEL_NAME: scorer.model.name,
            MODEL_VERSION: scorer.model.version,
            FEATURE_SERVICE: scorer.feature_service,
            AIRFLOW_RUN_ID: airflow_run_id,
        }
    )
    return frame.sort_values(key, kind="stable").reset_index(drop=True)


def write_predictions(path: Path, frame: pd.DataFrame) -> str:
    """Replace the partition's file with ``frame``; returns its SHA-256. Same frame, same bytes:
    no pandas index or metadata, one fixed codec, dictionary-encoded repeated strings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
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
    import time

    import numpy as np

    from mlops_pipeline.features.access import point_in_time_join

    spec = settings.spec
    timings = {} if timings is None else timings
    mark = time.perf_counter()
    features = point_in_time_join(settings, entities, scorer.feature_service)
    timings["features"] = time.perf_counter() - mark
    if len(features) != len(entities):
        raise PartitionNotScorable(
            f"the feature service {scorer.feature_service} returned {len(features)} rows for "
            f"{len(entities)} entity rows"
        )
    mark = time.perf_counter()
    # In chunks: the model's typed and encoded copies of its inputs then stay a chunk's size.
    scores = np.concatenate(
        [
            scorer.model.scores(features.iloc[start : start + PREDICT_CHUNK_ROWS])
            for start in range(0, len(features), PREDICT_CHUNK_ROWS)
        ]
        or [np.empty(0)]
    )
    frame = predictions_frame(spec, features, scores, scorer, airflow_run_id)
    timings["predict"] = time.perf_counter() - mark
    return frame


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
    entities = entity_rows(settings, partition)
    timings["load"] = time.perf_counter() - mark

    run_id = (airflow or {}).get("run_id", "none")
    frame = score_entities(settings, entities, scorer, run_id, timings)

    mark = time.perf_counter()
    path = predictions_path(settings, partition)
    digest = write_predictions(path, frame)
    table_rows = None
    if settings.profile == "production":
        from mlops_pipeline.scoring.table import predictions_database_url, replace_partition_rows

        table_rows = replace_partition_rows(
            predictions_database_url(settings), settings.predictions_table, spec, key, frame
        )
    timings["write"] = time.perf_counter() - mark
    decisions = frame[DECISION].to_numpy() if DECISION in frame else None
    return ScoringResult(
        date=key,
        rows=len(frame),
        path=str(path),
        sha256=digest,
        model_name=scorer.model.name,
        model_version=scorer.model.version,
        feature_service=scorer.feature_service,
        scores=score_summary(frame[SCORE].to_numpy(), decisions),
        table_rows=table_rows,
        timings={k: round(v, 3) for k, v in timings.items()},
    )
