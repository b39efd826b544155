from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def runner():
    """Runs DAGs in-process with ``dag.test()`` on the session's SQLite metadata database."""
    from mlops_pipeline import airflow_runner

    airflow_runner.migrate_metadata_db()
    return airflow_runner
