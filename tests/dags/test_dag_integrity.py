"""Every DAG file imports cleanly, is cheap to parse and documents itself."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ["pandas", "pyarrow", "sklearn", "mlflow", "feast", "great_expectations", "evidently"]
EXPECTED_DAGS = {
    "ingest_customer_activity",
    "materialize_customer_features",
    "train_churn_model",
    "deploy_churn_model",
    "rollback_churn_model",
    "monitor_drift",
}


@pytest.fixture(scope="module")
def dagbag():
    from mlops_pipeline.orchestration.runner import dagbag

    return dagbag()


def test_no_import_errors_and_every_dag_is_there(dagbag):
    assert dagbag.import_errors == {}
    assert EXPECTED_DAGS <= set(dagbag.dag_ids)


def test_one_dag_per_file_named_after_it(dagbag):
    for dag_id in dagbag.dag_ids:
        assert Path(dagbag.get_dag(dag_id).fileloc).stem == dag_id


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_has_tags_docs_and_owner(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert dag.tags, f"{dag_id} has no tags"
    assert dag.doc_md and len(dag.doc_md.strip()) > 100, f"{dag_id} has no real doc_md"
    assert dag.default_args.get("owner") not in (None, "airflow")


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_tasks_retry_transient_faults_and_runs_do_not_overlap(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        if "Sensor" in task.task_type or task.task_type == "PromotionApproval":
            continue  # a sensor's or a human's patience is a timeout, not retries
        assert task.retries >= 1, f"{dag_id}.{task.task_id} never retries"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_schedule_is_explicit(path):
    tree = ast.parse(path.read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dag"
    ]
    assert calls, f"{path.name} does not use @dag"
    assert all("schedule" in {kw.arg for kw in call.keywords} for call in calls)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_imports_no_heavy_library(path):
    code = (
        "import json, runpy, sys; runpy.run_path(sys.argv[1]); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_no_airflow2_idioms():
    banned = [
        "schedule_interval",
        "airflow.decorators",
        "days_ago",
        "from airflow import Dataset",
        "airflow.operators.python",
    ]
    for path in [*DAG_FILES, *(REPO / "include").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]:
        text = path.read_text()
        for idiom in banned:
            assert idiom not in text, f"{path} uses {idiom}"
