"""Airflow DAGs of the `store_demand` use case, built from `usecases/store_demand/usecase.yaml`."""

from mlops_pipeline.orchestration.factory import build_dags

globals().update(build_dags("store_demand"))
