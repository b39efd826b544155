"""Airflow DAGs of the `store_demand` use case, built from `usecases/store_demand/usecase.yaml`."""

# Imported by Airflow's DAG processor before it forks each parse (parsing_pre_import_modules):
# the modules the factory builds the DAGs from (mlops_pipeline.orchestration.dag_file).
import airflow.providers.standard.decorators.branch_python  # noqa: F401
import airflow.providers.standard.decorators.sensor  # noqa: F401
import airflow.providers.standard.decorators.short_circuit  # noqa: F401
import airflow.providers.standard.operators.hitl  # noqa: F401
import airflow.sdk.definitions.decorators  # noqa: F401

from mlops_pipeline.orchestration.factory import build_dags

globals().update(build_dags("store_demand"))
