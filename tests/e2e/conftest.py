from __future__ import annotations

import datetime as dt

import pytest

from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.features.store import register_definitions

# Nine validated days: enough for a time split (train, 3 validation, 3 test days).
DAYS = [dt.date(2025, 8, 1) + dt.timedelta(days=i) for i in range(9)]
ROWS = 800


@pytest.fixture(scope="session")
def runner():
    """Runs DAGs in-process with ``dag.test()`` on the session's SQLite metadata database."""
    from mlops_pipeline.orchestration import runner as airflow_runner

    airflow_runner.migrate_metadata_db()
    return airflow_runner


@pytest.fixture
def lake(settings):
    """Nine validated days and registered feature definitions in this test's MLOPS_HOME."""
    for day in DAYS:
        generate_day(settings.landing_dir, day, ROWS, file_format="parquet")
        ingest_day(settings.replace(build_data_docs=False), day)
    register_definitions(settings)
    return settings
