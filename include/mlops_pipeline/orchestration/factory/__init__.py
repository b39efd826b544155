"""One factory builds every DAG of a use case from its declaration.

``dags/<usecase>.py`` calls ``build_dags("<usecase>")`` and puts the seven DAGs in its globals:
``<usecase>__ingest`` -> ``__materialize`` -> ``__train`` -> ``__deploy`` chained by the use
case's own assets, ``__score`` per partition (batch predictions with the champion),
``__monitor_drift`` nightly (it may request a retrain), ``__rollback`` by hand.
Each DAG is built by its own module of this package; ``defaults`` holds what they share.

One thin file per use case rather than one file looping over all of them: a bad declaration is
then an import error of its own file only, which the UI shows with the spec's message, while the
other use cases keep their DAGs; and the scheduler re-parses a use case alone when it changes.

Parse stays cheap: this package reads the declaration (one YAML file, pydantic) and environment
settings, nothing else; every task imports the stage it runs inside its body and reads
``get_settings().for_usecase(name)`` at run time.
"""

from __future__ import annotations

from airflow.sdk import DAG

from mlops_pipeline.config import get_settings
from mlops_pipeline.orchestration.assets import usecase_assets
from mlops_pipeline.orchestration.factory.defaults import DagBuilder, dag_id
from mlops_pipeline.orchestration.factory.deploy import deploy_dag
from mlops_pipeline.orchestration.factory.ingest import ingest_dag
from mlops_pipeline.orchestration.factory.materialize import materialize_dag
from mlops_pipeline.orchestration.factory.monitor_drift import monitor_drift_dag
from mlops_pipeline.orchestration.factory.rollback import rollback_dag
from mlops_pipeline.orchestration.factory.score import score_dag
from mlops_pipeline.orchestration.factory.train import train_dag

BUILDERS: dict[str, DagBuilder] = {
    "ingest": ingest_dag,
    "materialize": materialize_dag,
    "train": train_dag,
    "deploy": deploy_dag,
    "rollback": rollback_dag,
    "monitor_drift": monitor_drift_dag,
    "score": score_dag,
}
STAGES = tuple(BUILDERS)


def build_dags(usecase_name: str) -> dict[str, DAG]:
    """The DAGs of ``usecase_name``, by dag_id. Raises ``SpecError`` (listing every problem of
    the declaration) before building any."""
    settings = get_settings().for_usecase(usecase_name)
    spec = settings.spec
    assets = usecase_assets(spec.name)
    return {dag_id(spec.name, stage): BUILDERS[stage](settings, spec, assets) for stage in STAGES}
