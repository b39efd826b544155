"""Every declared use case gets its DAGs, from one thin file that imports cleanly, is cheap to
parse and documents itself; a bad declaration breaks only its own file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_pipeline.config import get_settings
from mlops_pipeline.orchestration.dag_file import AIRFLOW_MODULES
from mlops_pipeline.orchestration.factory import STAGES, build_dags
from mlops_pipeline.usecases.loader import declared_usecases
from tests.conftest import REPO

DAG_FILES = sorted((REPO / "dags").glob("*.py"))
USECASES = declared_usecases(get_settings().usecases_dir)
HEAVY = ["pandas", "pyarrow", "sklearn", "mlflow", "feast", "great_expectations", "evidently"]
EXPECTED_DAGS = {f"{usecase}__{stage}" for usecase in USECASES for stage in STAGES}
# What a manual run chooses; everything else (window, hyperparameters, thresholds) is the
# declaration's, so no DAG param may copy a spec default.
PARAMS = {
    "ingest": set(),
    "materialize": {"dates"},
    "train": {"window_end", "reason"},
    "deploy": {"version"},
    "rollback": {"target", "reason"},
    "monitor_drift": {"date"},
    "score": set(),
}


def _spec(usecase: str):
    return get_settings().for_usecase(usecase).spec


@pytest.fixture(scope="module")
def dagbag():
    from mlops_pipeline.orchestration.runner import dagbag

    return dagbag()


def test_every_declared_usecase_has_one_dag_file():
    assert len(USECASES) >= 2, "churn and store_demand are declared"
    assert [p.stem for p in DAG_FILES] == USECASES


def test_no_import_errors_and_every_dag_is_there(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED_DAGS


def test_each_usecase_file_holds_exactly_its_dags(dagbag):
    for dag_id in dagbag.dag_ids:
        usecase = dag_id.split("__")[0]
        assert Path(dagbag.get_dag(dag_id).fileloc) == REPO / "dags" / f"{usecase}.py"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_has_usecase_tags_docs_and_owner(dagbag, dag_id):
    usecase, stage = dag_id.split("__")
    spec = _spec(usecase)
    dag = dagbag.get_dag(dag_id)
    assert {"mlops", usecase} <= set(dag.tags), dag.tags
    assert dag.doc_md and len(dag.doc_md.strip()) > 300, f"{dag_id} has no real doc_md"
    # Written from the declaration: it names this use case's model and data.
    assert f"`{spec.model_name}`" in dag.doc_md and f"`{spec.dataset}`" in dag.doc_md
    assert dag.default_args["owner"] == spec.owner
    assert set(dag.params.keys()) == PARAMS[stage]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_every_trigger_form_param_says_what_it_is_for(dagbag, dag_id):
    """The trigger form shows a param's description under its field: without one, a manual
    run's author has only the param's name to go on."""
    params = dagbag.get_dag(dag_id).params
    undescribed = [
        key for key in params.keys() if not (params.get_param(key).description or "").strip()
    ]
    assert undescribed == [], f"{dag_id}: params without a description: {undescribed}"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_tasks_retry_transient_faults_and_runs_do_not_overlap(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert dag.max_active_runs == 1 and dag.catchup is False
    for task in dag.tasks:
        if "Sensor" in task.task_type or task.task_type == "PromotionApproval":
            continue  # a sensor's or a human's patience is a timeout, not retries
        assert task.retries >= 1, f"{dag_id}.{task.task_id} never retries"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_every_task_maps_permanent_failures_through_the_one_adapter(dagbag, dag_id):
    from mlops_pipeline.orchestration.failures import fail_fast

    for task in dagbag.get_dag(dag_id).tasks:
        if task.task_type == "PromotionApproval":
            continue  # a human's answer, no platform code
        # fail_fast() as a decorator: the wrapper closes over its context manager.
        cells = [c.cell_contents for c in task.python_callable.__closure__ or ()]
        assert any(getattr(c, "func", None) is fail_fast.__wrapped__ for c in cells), (
            f"{dag_id}.{task.task_id} does not go through fail_fast"
        )


@pytest.mark.parametrize("usecase", USECASES)
def test_schedules_follow_the_declaration_and_the_usecase_assets(dagbag, usecase):
    from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable

    from mlops_pipeline.orchestration.runner import scheduled_on

    spec = _spec(usecase)

    def dag(stage):
        return dagbag.get_dag(f"{usecase}__{stage}")

    def assets(stage):
        return scheduled_on(dag(stage))

    for stage in ("ingest", "score"):
        timetable = dag(stage).timetable
        assert isinstance(timetable, CronDataIntervalTimetable)
        assert (timetable.expression, timetable.timezone) == (spec.cadence.cron, "UTC")
    assert assets("materialize") == {f"{usecase}__validated_data"}
    # Either event trains: fresh features (when due) or a drift request.
    assert assets("train") == {f"{usecase}__features_online", f"{usecase}__retrain_requested"}
    assert type(dag("train").timetable.asset_condition).__name__ == "AssetAny"
    assert assets("deploy") == {f"{usecase}__challenger"}
    assert type(dag("rollback").timetable).__name__ == "NullTimetable"  # manual only
    drift = dag("monitor_drift").timetable
    assert isinstance(drift, CronTriggerTimetable)
    assert (drift.expression, drift.interval) == (
        get_settings().drift_schedule,
        spec.cadence.length,
    )


def test_producers_emit_the_assets_their_consumers_wait_for(dagbag):
    for usecase in USECASES:
        outlets = {
            (task.dag_id.split("__")[1], task.task_id): {o.name for o in task.outlets}
            for dag_id in dagbag.dag_ids
            if dag_id.startswith(f"{usecase}__")
            for task in dagbag.get_dag(dag_id).tasks
            if task.outlets
        }
        assert outlets == {
            ("ingest", "validate_and_split"): {f"{usecase}__validated_data"},
            ("materialize", "check_online"): {f"{usecase}__features_online"},
            ("monitor_drift", "request_retrain"): {f"{usecase}__retrain_requested"},
            ("train", "train"): {f"{usecase}__challenger"},
            ("score", "score"): {f"{usecase}__predictions"},
        }


def test_drift_schedule_and_landing_wait_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLOPS_DRIFT_SCHEDULE", "30 4 * * *")
    monkeypatch.setenv("MLOPS_LANDING_WAIT_TIMEOUT_SECONDS", "77")
    dags = build_dags(USECASES[0])
    assert dags[f"{USECASES[0]}__monitor_drift"].timetable.expression == "30 4 * * *"
    sensor = dags[f"{USECASES[0]}__ingest"].get_task("wait_for_landing_file")
    assert sensor.timeout == 77


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_is_a_thin_call_of_the_factory(path):
    code = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith(('"""', "#"))
    ]
    assert code == [
        *(f"import {module}  # noqa: F401" for module in AIRFLOW_MODULES),
        "from mlops_pipeline.orchestration.factory import build_dags",
        f'globals().update(build_dags("{path.stem}"))',
    ]


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_the_dag_processor_has_imported_every_airflow_module_a_parse_needs(path):
    """As Airflow's DAG processor prepares a parse: its manager (``airflow dag-processor``)
    imports the file's top-level ``airflow.*`` imports (``parsing_pre_import_modules``) before
    it forks, and the forked process imports the task runner; the parse itself then imports no
    Airflow module again."""
    code = (
        "import importlib, json, runpy, sys\n"
        "import airflow.cli.commands.dag_processor_command\n"
        "from airflow.utils.file import iter_airflow_imports\n"
        "for module in iter_airflow_imports(sys.argv[1]):\n"
        "    importlib.import_module(module)\n"
        "import airflow.sdk.execution_time.task_runner\n"
        "before = set(sys.modules)\n"
        "runpy.run_path(sys.argv[1])\n"
        "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith('airflow'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


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


def test_a_bad_declaration_is_an_import_error_of_its_file_only(tmp_path, monkeypatch):
    """A broken use case shows its spec's message in the UI; the other keeps its DAGs."""
    from airflow.dag_processing.dagbag import DagBag

    usecases, dags = tmp_path / "usecases", tmp_path / "dags"
    good = USECASES[0]
    shutil.copytree(REPO / "usecases" / good, usecases / good)
    shutil.copytree(REPO / "usecases" / good, usecases / "broken")
    declaration = yaml.safe_load((usecases / "broken" / "usecase.yaml").read_text())
    declaration |= {"name": "broken", "task": "clustering", "cadence": "monthly"}
    (usecases / "broken" / "usecase.yaml").write_text(yaml.safe_dump(declaration))
    dags.mkdir()
    for name in (good, "broken"):
        shutil.copy(REPO / "dags" / f"{good}.py", dags / f"{name}.py")
        text = (dags / f"{name}.py").read_text().replace(f'"{good}"', f'"{name}"')
        (dags / f"{name}.py").write_text(text)
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(usecases))

    bag = DagBag(str(dags))

    assert set(bag.import_errors) == {str(dags / "broken.py")}
    message = bag.import_errors[str(dags / "broken.py")]
    assert "SpecError" in message and "usecase.yaml" in message
    # Every problem at once, each naming its field.
    assert "2 problem(s)" in message
    assert "- task:" in message and "- cadence:" in message
    assert set(bag.dag_ids) == {f"{good}__{stage}" for stage in STAGES}


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
