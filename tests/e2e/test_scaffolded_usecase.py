"""A use case the platform has never seen, from a data file to live predictions, with no file
edited by hand: ``new-usecase`` drafts its declaration and DAG file from a sample, then its
weekly partitions go through its own DAGs (ingest, materialize, train, gated deploy, nightly
drift check and the retrain it requests), and its model server answers by entity id and inline.

The panel is named unlike the shipped use cases: people (``person_id``) observed weekly
(``observed_at``), whether they are employed (``employed``, true/false), with a column that may
be empty (``hours_worked``)."""

from __future__ import annotations

import datetime as dt
import json
import math

import httpx
import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.data import storage
from mlops_pipeline.deployment import registry
from mlops_pipeline.monitoring.records import read_record
from mlops_pipeline.platform.cli import main
from mlops_pipeline.platform.demo.lifecycle import run_lifecycle, unexpected
from mlops_pipeline.platform.demo.report import table
from mlops_pipeline.serving.process import running_server
from mlops_pipeline.usecases.spec import Cadence, Kind, Task

pytestmark = pytest.mark.e2e

NAME = "employment"
PEOPLE = 400
START = dt.date(2025, 3, 3)  # a Monday
WEEKS = 10
DRIFT_FROM = 7
OUT_OF_RANGE_WEEK = 2
SECTORS = ["health", "public", "retail", "tech"]
# Every week holds the bounds, so the sample's (widened) ranges hold every later week.
BOUNDS = {"hours_worked": (0.0, 80.0), "commute_km": (0.0, 120.0)}


def week_frame(week: int, drift: bool = False, out_of_range: bool = False) -> pd.DataFrame:
    """One weekly snapshot of every person; ``drift``: fewer hours, longer commutes, more remote
    work (the same relation to the label: covariate drift)."""
    traits = np.random.default_rng([5, 0])
    age = traits.integers(18, 66, PEOPLE)
    education = traits.integers(8, 21, PEOPLE)
    sector = traits.choice(SECTORS, PEOPLE)
    rng = np.random.default_rng([5, week + 1])
    hours = rng.normal(32.0, 10.0, PEOPLE)
    commute = rng.gamma(2.0, 6.0, PEOPLE)
    remote = rng.random(PEOPLE) < 0.3
    if drift:
        hours, commute = hours * 0.6, commute * 2.5 + 10.0
        remote = rng.random(PEOPLE) < 0.8
    hours = np.clip(hours, *BOUNDS["hours_worked"]).round(1)
    commute = np.clip(commute, *BOUNDS["commute_km"]).round(2)
    hours[:2], commute[:2] = BOUNDS["hours_worked"], BOUNDS["commute_km"]
    signal = (
        0.12 * (hours - 30.0)
        + 0.35 * (education - 14)
        - 0.05 * (age - 40)
        + np.where(sector == "tech", 0.8, 0.0)
        - 0.03 * commute
    )
    employed = rng.random(PEOPLE) < 1.0 / (1.0 + np.exp(-signal))
    missing = rng.random(PEOPLE) < 0.05
    missing[:2] = False
    seconds = rng.integers(0, 7 * 86_400, PEOPLE)
    observed = pd.Timestamp(START + dt.timedelta(weeks=week), tz="UTC") + pd.to_timedelta(
        seconds, unit="s"
    )
    frame = pd.DataFrame(
        {
            "person_id": np.arange(1, PEOPLE + 1),
            "observed_at": observed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "age": age,
            "education_years": education,
            "sector": sector,
            "hours_worked": np.where(missing, np.nan, hours),
            "commute_km": commute,
            "remote": np.where(remote, "true", "false"),
            "employed": np.where(employed, "true", "false"),
        }
    )
    if out_of_range:
        frame.loc[5, "age"] = 150
    return frame


def land(settings, day: dt.date, scenario: str) -> None:
    """The use case's weekly file arrives in its landing zone (as any feed would)."""
    week = (day - START).days // 7
    frame = week_frame(
        week, drift=scenario == "covariate_drift", out_of_range=scenario == "out_of_range"
    )
    path = storage.landing_file(settings, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


@pytest.fixture
def scaffolded_dags(runner, tmp_path, monkeypatch, mlops_home):
    """The new use case's folder and its own DAG folder, which the runner's DagBag and the DAG
    bundle that ``dag.test()`` serializes from both read for this test (not the repository's)."""
    from airflow import settings as airflow_settings

    dags = tmp_path / "dags"
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(tmp_path / "usecases"))
    monkeypatch.setenv("MLOPS_USECASE", NAME)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setattr(airflow_settings, "DAGS_FOLDER", str(dags))
    monkeypatch.setenv("MLOPS_BUILD_DATA_DOCS", "false")
    # Small weekly partitions: lower the row minimums made for large partitions.
    monkeypatch.setenv(
        "MLOPS_USECASE_OVERRIDES",
        json.dumps(
            {
                NAME: {
                    "training": {"min_train_rows": PEOPLE // 2},
                    "drift": {"min_partition_rows": PEOPLE // 2},
                    "gates": {"segment_min_rows": 50},
                }
            }
        ),
    )
    runner.dagbag.cache_clear()
    yield dags
    runner.dagbag.cache_clear()


def test_a_new_usecase_from_a_sample_file_runs_its_whole_lifecycle(
    runner, scaffolded_dags, tmp_path, capsys
):
    sample = tmp_path / "people_week1.csv"
    week_frame(0).to_csv(sample, index=False)
    assert (
        main(
            [
                "new-usecase",
                NAME,
                "--from",
                str(sample),
                "--entity",
                "person_id",
                "--timestamp",
                "observed_at",
                "--label",
                "employed",
                "--cadence",
                "weekly",
                "--dags-dir",
                str(scaffolded_dags),
            ]
        )
        == 0
    )
    assert main(["check-usecase", NAME]) == 0
    print(capsys.readouterr().out)
    settings = get_settings()
    spec = settings.spec
    assert spec.task is Task.BINARY_CLASSIFICATION and spec.cadence is Cadence.WEEKLY
    assert spec.column("employed").kind is Kind.BOOL
    assert spec.column("hours_worked").nullable and spec.column("sector").values == tuple(SECTORS)
    assert (scaffolded_dags / f"{NAME}.py").exists()

    scenarios = {
        week: (
            "covariate_drift"
            if week >= DRIFT_FROM
            else "out_of_range"
            if week == OUT_OF_RANGE_WEEK
            else "clean"
        )
        for week in range(WEEKS)
    }
    lifecycle = run_lifecycle(settings, START, scenarios, PEOPLE, land=land)
    print(table(lifecycle.rows))
    assert unexpected(lifecycle.rows) == []
    rows = lifecycle.rows
    assert [r["date"] for r in rows] == [
        (START + dt.timedelta(weeks=w)).isoformat() for w in range(WEEKS)
    ]
    assert rows[OUT_OF_RANGE_WEEK]["quarantined"] == 1, "the inferred range of age holds"
    # Seven weekly partitions (train, 3 validation, 3 test): the first model, gated on floors.
    assert rows[6]["model"] == "v1 promoted" and rows[6]["champion"] == "v1"
    retrained = [r for r in rows[DRIFT_FROM:] if r["retrain"] == "RETRAIN"]
    assert retrained, "covariate drift requests a retrain"
    assert float(retrained[0]["drift_share"]) >= spec.drift.share_threshold
    assert "v2 " in retrained[0]["model"]
    tracking = registry.client(settings)
    version = tracking.get_model_version(spec.model_name, "2")
    assert version.tags["mlops.trigger_reason"].startswith("drift"), version.tags
    night = read_record(settings, dt.date.fromisoformat(retrained[0]["date"]))
    assert night.decision.retrain is True

    # Its own model server: by entity id (online store) and inline (raw features).
    score, decision = spec.serving.score_field, spec.serving.decision_field
    assert (score, decision) == ("employed_probability", "predicted_employed")
    last = week_frame(WEEKS - 1, drift=True)
    inline = last.iloc[0].to_dict()
    inline = {
        k: (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in inline.items()
        if k not in ("observed_at", "employed")
    }
    inline["remote"] = inline["remote"] == "true"
    inline = json.loads(json.dumps(inline, default=lambda v: v.item()))
    with running_server(settings) as base:
        by_id = httpx.post(
            f"{base}/predict", json={"entities": {"person_id": [1, 2, 10**9]}}, timeout=30
        )
        by_row = httpx.post(f"{base}/predict", json={"instances": [inline]}, timeout=30)
    assert by_id.status_code == 200, by_id.text
    body = by_id.json()
    assert body["model_name"] == spec.model_name and body["threshold"] is not None
    assert [p["person_id"] for p in body["predictions"]] == [1, 2]
    for prediction in body["predictions"]:
        assert 0.0 <= prediction[score] <= 1.0 and isinstance(prediction[decision], bool)
    assert [u["person_id"] for u in body["unknown"]] == [10**9]
    assert by_row.status_code == 200, by_row.text
    (inline_prediction,) = by_row.json()["predictions"]
    assert inline_prediction["person_id"] == 1 and 0.0 <= inline_prediction[score] <= 1.0
