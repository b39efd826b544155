"""Airflow DAGs of the `churn` use case, built from `usecases/churn/usecase.yaml`."""

from mlops_pipeline.orchestration.factory import build_dags

globals().update(build_dags("churn"))
