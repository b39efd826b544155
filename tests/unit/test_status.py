"""``mlops-pipeline status`` reads the same state the pipeline writes."""

from __future__ import annotations

import datetime as dt

from mlops_pipeline.datagen import generate_day
from mlops_pipeline.feature_store import register_definitions
from mlops_pipeline.ingestion import ingest_day
from mlops_pipeline.materialization import days_interval, materialize_interval
from mlops_pipeline.status import platform_status


def test_status_before_anything_ran_creates_nothing(settings):
    status = platform_status(settings)
    assert status["ingestion"]["validated_partitions"] == []
    assert status["features"]["materialized"] == {}
    assert status["models"]["versions"] == []
    assert not (settings.mlflow_dir / "mlflow.db").exists()


def test_status_shows_materialized_ranges(settings):
    day = dt.date(2025, 6, 2)
    generate_day(settings.landing_dir, day, 300)
    ingest_day(settings, day)
    register_definitions(settings)
    materialize_interval(settings, *days_interval([day]))
    ranges = platform_status(settings)["features"]["materialized"]
    assert set(ranges) == {"customer_profile", "customer_activity"}
    assert ranges["customer_activity"]["to"] == "2025-06-03T00:00:00+00:00"
