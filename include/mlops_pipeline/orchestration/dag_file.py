"""The text of a use case's DAG file, ``dags/<usecase>.py``: a call of the DAG factory, after
the Airflow modules the factory builds on.

Airflow's DAG processor forks one process per parse, and before it forks it imports, once and in
its own process, every ``airflow.*`` module the file names in a top-level import
(``[dag_processor] parsing_pre_import_modules``, on by default). The factory imports Airflow's
operators and decorators from inside the platform, where the DAG processor cannot see them, so
each parse would import them again; the file names them so that it does not. The list is
complete when parsing a DAG file imports no ``airflow.*`` module that the DAG processor has not
imported already (a test checks it).
"""

from __future__ import annotations

AIRFLOW_MODULES = (
    "airflow.providers.standard.decorators.branch_python",
    "airflow.providers.standard.decorators.sensor",
    "airflow.providers.standard.decorators.short_circuit",
    "airflow.providers.standard.operators.hitl",
    "airflow.sdk.definitions.decorators",
)
# The repository's line length (ruff): the file keeps to it.
MAX_LINE = 100


def dag_file_text(name: str) -> str:
    """The DAG file of use case ``name``, as shipped and as ``new-usecase`` writes it."""
    doc = f"Airflow DAGs of the `{name}` use case, built from `usecases/{name}/usecase.yaml`."
    if len(doc) + 6 > MAX_LINE:
        doc = doc.replace(" built from ", " built from\n")
    imports = "".join(f"import {module}  # noqa: F401\n" for module in AIRFLOW_MODULES)
    return (
        f'"""{doc}"""\n'
        "\n"
        "# Imported by Airflow's DAG processor before it forks each parse "
        "(parsing_pre_import_modules):\n"
        "# the modules the factory builds the DAGs from (mlops_pipeline.orchestration.dag_file).\n"
        f"{imports}"
        "\n"
        "from mlops_pipeline.orchestration.factory import build_dags\n"
        "\n"
        f'globals().update(build_dags("{name}"))\n'
    )
