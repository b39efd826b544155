"""Where the view links to outside itself: the MLflow UI (a run, a registered version) and
Airflow's own UI (a DAG run), built from settings and the records' lineage."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

from mlops_pipeline.config import Settings

# The MLflow UI as a browser reaches it: the tracking URI is often a name only the workers
# resolve (``http://mlflow:5000`` in compose), so the UI's own address can be set apart.
MLFLOW_UI_ENV = "MLOPS_MLFLOW_UI_URL"
# Airflow's UI is served by the api-server that mounts the view at ``/mlops``: from a use
# case's page (``/mlops/<usecase>/``) its routes are two levels up, whatever the base URL.
AIRFLOW_ROOT = "../../"


def mlflow_ui_url(settings: Settings, environ: Mapping[str, str] = os.environ) -> str | None:
    """The MLflow UI's base URL: ``MLOPS_MLFLOW_UI_URL``, else an HTTP tracking URI, else none
    (the embedded SQLite store has no UI to link to)."""
    configured = environ.get(MLFLOW_UI_ENV, "").strip()
    if configured:
        return configured.rstrip("/")
    tracking = settings.mlflow_tracking_uri.strip()
    if tracking.startswith(("http://", "https://")):
        return tracking.rstrip("/")
    return None


def mlflow_run_url(base: str | None, run_id: str | None) -> str | None:
    if not base or not run_id:
        return None
    return f"{base}/#/runs/{quote(run_id, safe='')}"


def mlflow_version_url(base: str | None, model: str, version: str | None) -> str | None:
    if not base or not version:
        return None
    return f"{base}/#/models/{quote(model, safe='')}/versions/{quote(version, safe='')}"


def airflow_run_url(airflow: Mapping[str, str] | None) -> str | None:
    """The Airflow UI's page of the run a record names (``dag_id``, ``run_id``), if any."""
    dag_id = (airflow or {}).get("dag_id")
    run_id = (airflow or {}).get("run_id")
    if not dag_id or not run_id or "none" in (dag_id, run_id):
        return None
    return f"{AIRFLOW_ROOT}dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
