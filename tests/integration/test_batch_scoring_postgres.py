"""Batch scoring in the production profile: the Feast registry on the machine's Postgres, and
the predictions written to a Postgres table beside the Parquet partition."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pandas as pd

from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.deployment.loading import LoadedVersion
from mlops_pipeline.features.store import register_definitions
from mlops_pipeline.scoring import batch
from mlops_pipeline.scoring.table import partition_rows, predictions_database_url

DAYS = [dt.date(2025, 8, 1), dt.date(2025, 8, 2)]
ROWS = 300


class _ChargesModel:
    """A stand-in for a fitted classifier: the probability rises with the monthly bill."""

    def predict_proba(self, inputs: pd.DataFrame) -> np.ndarray:
        p = (inputs["monthly_charges"].to_numpy() / 500).clip(0, 1)
        return np.column_stack([1 - p, p])


def test_scoring_replaces_the_partitions_rows_of_the_postgres_table(production_settings):
    settings = production_settings.replace(
        predictions_table=f"it_predictions_{uuid.uuid4().hex[:8]}", build_data_docs=False
    )
    for day in DAYS:
        generate_day(settings, day, ROWS, file_format="parquet")
        ingest_day(settings, day)
    register_definitions(settings)
    model = LoadedVersion(
        spec=settings.spec, version="5", run_id="run-5", threshold=0.3, model=_ChargesModel()
    )
    scorer = batch.Scorer(model=model, feature_service=settings.spec.features.service)
    # The table is in the Feast registry's database: the profile names no other one.
    url = predictions_database_url(settings)

    def score(day, run_id="scheduled__a"):
        return batch.score_partition(settings, day, {"run_id": run_id}, scorer=scorer)

    first = score(DAYS[0])
    other = score(DAYS[1])
    rows = partition_rows(url, settings.predictions_table, settings.spec.name, "2025-08-01")
    frame = pd.read_parquet(first.path)
    assert first.table_rows == len(rows) == len(frame) == ROWS
    assert other.table_rows == ROWS
    assert [r[2] for r in rows] == frame["customer_id"].tolist()
    assert [r[4] for r in rows] == frame[batch.SCORE].tolist()
    assert [r[5] for r in rows] == frame[batch.DECISION].tolist()
    assert {(r[0], r[1], r[6], r[7], r[8], r[9]) for r in rows} == {
        (settings.spec.name, "2025-08-01", model.name, "5", scorer.feature_service, "scheduled__a")
    }
    assert [r[3] for r in rows] == frame["event_timestamp"].dt.to_pydatetime().tolist()

    # A re-run leaves the same rows (not twice as many) and the other partition untouched.
    again = score(DAYS[0])
    assert again.table_rows == ROWS and again.sha256 == first.sha256
    assert partition_rows(url, settings.predictions_table, settings.spec.name, "2025-08-01") == (
        rows
    )
    # A later run of the partition replaces its rows, run id included.
    score(DAYS[0], "manual__b")
    rerun = partition_rows(url, settings.predictions_table, settings.spec.name, "2025-08-01")
    assert len(rerun) == ROWS and {r[9] for r in rerun} == {"manual__b"}
    assert [r[:9] for r in rerun] == [r[:9] for r in rows]
    assert (
        len(partition_rows(url, settings.predictions_table, settings.spec.name, "2025-08-02"))
        == ROWS
    )
