from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.features.store import register_definitions

# Nine validated days: enough for a time split (train, 3 validation, 3 test days).
DAYS = [dt.date(2025, 8, 1) + dt.timedelta(days=i) for i in range(9)]
ROWS = 800
# Declarations as the e2e tests run them: fewer boosting iterations than the shipped models
# (the tests check the platform, not the model's last point of quality).
FAST = {
    "churn": {"training": {"model": {"params": {"max_iter": 60}}}},
    "store_demand": {"training": {"model": {"params": {"max_iter": 60}}}},
}


def merged(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(out.get(key), dict) else value
    return out


@pytest.fixture(autouse=True)
def fast_declarations(monkeypatch):
    """Every e2e test (and the DAG runs it makes, which read the environment) trains fast."""
    monkeypatch.setenv("MLOPS_USECASE_OVERRIDES", json.dumps(FAST))


@pytest.fixture
def override(monkeypatch, mlops_home):
    """``override({"churn": {...}})``: deep-merge changes into the declarations, for this test
    and its DAG runs; returns the default use case's fresh settings."""
    from mlops_pipeline.config import get_settings

    def apply(changes: dict):
        monkeypatch.setenv("MLOPS_USECASE_OVERRIDES", json.dumps(merged(FAST, changes)))
        return get_settings()

    return apply


@pytest.fixture(scope="session")
def runner():
    """Runs DAGs in-process with ``dag.test()`` on the session's SQLite metadata database."""
    from mlops_pipeline.orchestration import runner as airflow_runner

    airflow_runner.migrate_metadata_db()
    return airflow_runner


@pytest.fixture(scope="session")
def validated_lake(tmp_path_factory) -> Path:
    """An MLOPS_HOME holding the nine days landed and validated, built once per session."""
    from mlops_pipeline.config import get_settings

    home = tmp_path_factory.mktemp("validated-lake") / "home"
    settings = get_settings().replace(home=home, build_data_docs=False)
    for day in DAYS:
        generate_day(settings, day, ROWS, file_format="parquet")
        ingest_day(settings, day)
    return home


@pytest.fixture
def lake(settings, validated_lake):
    """Nine validated days (a copy of the session's) and feature definitions registered in this
    test's MLOPS_HOME: the Feast registry is made here, as it records its own home's paths."""
    shutil.copytree(validated_lake, settings.home, dirs_exist_ok=True)
    register_definitions(settings)
    return settings
