"""``mlops-pipeline status`` reads the same state the pipeline writes."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.features.materialization import (
    days_interval,
    materialize_interval,
    materialized_ranges,
)
from mlops_pipeline.features.store import register_definitions
from mlops_pipeline.platform.status import platform_status


def test_status_before_anything_ran_creates_nothing(settings):
    status = platform_status(settings)
    assert status["usecase"]["name"] == "churn"
    assert status["models"]["registered_model"] == settings.spec.model_name
    assert status["ingestion"]["validated_partitions"] == []
    assert status["features"]["materialized"] == {}
    assert status["models"]["versions"] == []
    assert not (settings.mlflow_dir / "mlflow.db").exists()


def test_status_shows_materialized_ranges(settings):
    day = dt.date(2025, 6, 2)
    generate_day(settings, day, 300)
    ingest_day(settings, day)
    register_definitions(settings)
    materialize_interval(settings, *days_interval([day]))
    ranges = platform_status(settings)["features"]["materialized"]
    assert set(ranges) == {"customer_profile", "customer_activity"}
    assert ranges["customer_activity"]["to"] == "2025-06-03T00:00:00+00:00"
    # Read from the registry file without Feast, and the same as Feast reads it.
    assert ranges == materialized_ranges(settings)
    assert status_in_a_subprocess()["features"]["materialized"] == ranges


HEAVY = ("feast", "mlflow", "pandas", "sklearn", "great_expectations", "evidently")


def status_in_a_subprocess() -> dict:
    """``mlops-pipeline status --json`` in a fresh interpreter (this environment's use case and
    home), asserting it imported none of the heavy libraries: their import is what made
    ``status`` slow."""
    probe = (
        "import json, sys\n"
        "from mlops_pipeline.platform.cli import main\n"
        "code = main(['status', '--json'])\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print(json.dumps(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ.copy()
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.splitlines()[-1]) == []
    return json.loads(done.stdout)


def test_status_lists_the_last_nights_drift_and_decisions(settings):
    from mlops_pipeline.data import storage
    from mlops_pipeline.monitoring.records import SUMMARY, night_dir

    for offset, (share, retrain) in enumerate([(0.05, False), (0.31, False), (0.31, True)]):
        night = dt.date(2025, 6, 10) + dt.timedelta(days=offset)
        storage.write_json(
            night_dir(settings, night) / SUMMARY,
            {
                "night": night.isoformat(),
                "status": "checked",
                "rows": 20_000,
                "champion": {"version": "1"},
                "drift": {"drift_share": share, "drifted_columns": ["monthly_charges"]},
                "performance": {"metric": "roc_auc", "drop": 0.01},
                "decision": {"retrain": retrain, "reasons": [f"night {offset}"]},
            },
        )
    nights = platform_status(settings, limit=2)["monitoring"]["nights"]
    assert [(n["night"], n["drift_share"], n["retrain"]) for n in nights] == [
        ("2025-06-12", 0.31, True),
        ("2025-06-11", 0.31, False),
    ]
    assert nights[0]["reasons"] == ["night 2"] and nights[0]["champion_version"] == "1"
    assert (nights[0]["performance_metric"], nights[0]["performance_drop"]) == ("roc_auc", 0.01)


def test_status_of_every_declared_use_case_names_each_from_its_spec(tmp_path, monkeypatch):
    from mlops_pipeline.config import get_settings
    from mlops_pipeline.platform.status import usecases_status
    from tests.ui.state import REGRESSION, write_usecases

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(write_usecases(tmp_path / "usecases")))
    settings = get_settings()
    every = usecases_status(settings)
    assert list(every) == ["churn", REGRESSION]
    regression = every[REGRESSION]
    spec = settings.for_usecase(REGRESSION).spec
    assert regression["usecase"]["task"] == "regression"
    assert regression["usecase"]["primary_metric"] == "r2"
    assert [m["metric"] for m in regression["usecase"]["metrics"]] == ["r2", "rmse", "mae"]
    assert regression["usecase"]["decision_field"] is None
    assert regression["models"]["registered_model"] == spec.model_name
    assert regression["monitoring"]["reports"].endswith(f"drift/{REGRESSION}")
    assert every["churn"]["usecase"]["primary_metric"] == "roc_auc"
    assert every["churn"]["models"]["registered_model"] != spec.model_name
