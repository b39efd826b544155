"""The production copy of the batch predictions: one Postgres table shared by the use cases,
whose rows of a partition are replaced in one transaction (a re-run leaves the same rows, and
a reader never sees a partition half written)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import Settings
from mlops_pipeline.failures import PermanentFailure

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlops_pipeline.usecases.spec import UseCaseSpec

# The table's columns: the entity's and timestamp's names differ per use case, so they are
# stored under fixed names beside the use case's.
COLUMNS = (
    "usecase",
    "partition_key",
    "entity_key",
    "entity_timestamp",
    "score",
    "decision",
    "model_name",
    "model_version",
    "feature_service",
    "airflow_run_id",
)

_CREATE = """
CREATE TABLE IF NOT EXISTS {table} (
    usecase text NOT NULL,
    partition_key text NOT NULL,
    entity_key bigint NOT NULL,
    entity_timestamp timestamptz NOT NULL,
    score double precision NOT NULL,
    decision boolean,
    model_name text NOT NULL,
    model_version text NOT NULL,
    feature_service text NOT NULL,
    airflow_run_id text NOT NULL,
    PRIMARY KEY (usecase, partition_key, entity_key)
)
"""


class NoPredictionsDatabase(PermanentFailure):
    """The production profile names no Postgres database for the predictions."""


def predictions_database_url(settings: Settings) -> str:
    """A libpq URL of the predictions database: ``MLOPS_PREDICTIONS_DATABASE_URL``, else the
    Feast registry's database (the production profile has one already)."""
    url = (
        settings.predictions_database_url.get_secret_value()
        or settings.feast_registry_url.get_secret_value()
    )
    if not url.startswith("postgresql"):
        raise NoPredictionsDatabase(
            "the production profile writes batch predictions to Postgres: set "
            "MLOPS_PREDICTIONS_DATABASE_URL (or MLOPS_FEAST_REGISTRY_URL) to a postgresql URL"
        )
    # SQLAlchemy names the driver in the scheme; libpq does not.
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if "+" in scheme else url


def _records(spec: UseCaseSpec, partition: str, rows: Any) -> list[tuple[Any, ...]]:
    """The table's rows of a predictions table (Arrow) or frame, in ``COLUMNS`` order."""
    import pyarrow as pa

    from mlops_pipeline.scoring import batch

    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
    count = table.num_rows
    names = table.column_names

    def values(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in names else [None] * count

    return list(
        zip(
            [spec.name] * count,
            [partition] * count,
            values(spec.entity.key),
            values(spec.timestamp),
            values(batch.SCORE),
            values(batch.DECISION),
            values(batch.MODEL_NAME),
            values(batch.MODEL_VERSION),
            values(batch.FEATURE_SERVICE),
            values(batch.AIRFLOW_RUN_ID),
            strict=True,
        )
    )


def replace_partition_rows(
    url: str, table: str, spec: UseCaseSpec, partition: str, frame: pa.Table | pd.DataFrame
) -> int:
    """Replace the use case's rows of ``partition`` in ``table`` by ``frame``'s (a predictions
    table or frame; delete and copy in one transaction); returns the rows the table then holds
    for the partition."""
    import psycopg
    from psycopg import sql

    name = sql.Identifier(table)
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.execute(sql.SQL(_CREATE).format(table=name))
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE usecase = %s AND partition_key = %s").format(name),
            (spec.name, partition),
        )
        copy_rows = sql.SQL("COPY {} ({}) FROM STDIN").format(
            name, sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        with conn.cursor() as cursor, cursor.copy(copy_rows) as copy:
            for record in _records(spec, partition, frame):
                copy.write_row(record)
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE usecase = %s AND partition_key = %s").format(
                name
            ),
            (spec.name, partition),
        ).fetchone()
    return int(count[0]) if count else 0


def partition_rows(url: str, table: str, usecase: str, partition: str) -> list[tuple[Any, ...]]:
    """The table's rows of a use case's partition, by entity key (for checks and tests)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute(
            sql.SQL(
                "SELECT {} FROM {} WHERE usecase = %s AND partition_key = %s ORDER BY entity_key"
            ).format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.Identifier(table)),
            (usecase, partition),
        ).fetchall()
