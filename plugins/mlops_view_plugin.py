"""The MLOps view: a FastAPI app mounted in the api-server at ``/mlops`` and an entry in the
UI's navigation. The app and its rendering live in ``mlops_pipeline.platform.mlops_view``."""

from __future__ import annotations

from airflow.sdk.plugins_manager import AirflowPlugin

from mlops_pipeline.platform.mlops_view.app import URL_PREFIX, LazyApp, external_view


class MlopsViewPlugin(AirflowPlugin):
    name = "mlops_view"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "MLOps view"}]
    external_views = [external_view()]
