"""An hourly use case drafted by ``new-usecase`` runs its whole lifecycle through its own DAGs,
one hour after another: ingest (the hour's file under ``date=YYYY-MM-DDTHH``), materialize,
train on a window counted in hours, gated deploy, and the drift check of each completed hour
with the retrain it requests.

Kept small: a panel of people observed every hour (names unlike the shipped use cases), the
smallest time split (one hour each to train, validate and test) and five hours, covariate
drift from the fourth."""

from __future__ import annotations

import datetime as dt
import json

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
from mlops_pipeline.usecases.spec import Cadence

pytestmark = pytest.mark.e2e

NAME = "shift_panel"
PEOPLE = 400
START = dt.datetime(2025, 3, 3, 22)  # two hours before midnight: the window crosses it
HOURS = 5
DRIFT_FROM = 3
SHIFTS = ["early", "late", "night"]
BOUNDS = {"hours_slept": (0.0, 14.0), "commute_km": (0.0, 120.0)}


def hour_frame(hour: int, drift: bool = False) -> pd.DataFrame:
    """Every person observed once in the hour; ``drift``: less sleep, longer commutes (the
    same relation to the label: covariate drift)."""
    traits = np.random.default_rng([9, 0])
    age = traits.integers(18, 66, PEOPLE)
    shift = traits.choice(SHIFTS, PEOPLE)
    # Habits are the person's; an hour adds a little noise (clean hours do not drift).
    slept, commute = traits.normal(7.0, 1.5, PEOPLE), traits.gamma(2.0, 6.0, PEOPLE)
    rng = np.random.default_rng([9, hour + 1])
    slept, commute = slept + rng.normal(0, 0.2, PEOPLE), commute + rng.normal(0, 0.3, PEOPLE)
    if drift:
        slept, commute = slept * 0.6, commute * 2.5 + 10.0
    slept = np.clip(slept, *BOUNDS["hours_slept"]).round(1)
    commute = np.clip(commute, *BOUNDS["commute_km"]).round(2)
    slept[:2], commute[:2] = BOUNDS["hours_slept"], BOUNDS["commute_km"]
    signal = (
        1.5 * (slept - 7.0)
        - 0.08 * (commute - 12.0)
        - 0.05 * (age - 40)
        - np.where(shift == "night", 1.2, 0.0)
    )
    on_time = rng.random(PEOPLE) < 1.0 / (1.0 + np.exp(-signal))
    seconds = rng.integers(0, 3600, PEOPLE)
    observed = pd.Timestamp(START + dt.timedelta(hours=hour), tz="UTC") + pd.to_timedelta(
        seconds, unit="s"
    )
    return pd.DataFrame(
        {
            "person_id": np.arange(1, PEOPLE + 1),
            "observed_at": observed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "age": age,
            "shift": shift,
            "hours_slept": slept,
            "commute_km": commute,
            "on_time": np.where(on_time, "true", "false"),
        }
    )


def land(settings, hour: dt.datetime, scenario: str) -> None:
    """The hour's file arrives in its landing zone."""
    offset = (hour - START) // dt.timedelta(hours=1)
    path = storage.landing_file(settings, hour)
    path.parent.mkdir(parents=True, exist_ok=True)
    hour_frame(offset, drift=scenario == "covariate_drift").to_csv(path, index=False)


@pytest.fixture
def scaffolded_dags(runner, tmp_path, monkeypatch, mlops_home):
    """The new use case's folder and DAG folder, read by the runner's DagBag and ``dag.test()``
    for this test (not the repository's)."""
    from airflow import settings as airflow_settings

    dags = tmp_path / "dags"
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(tmp_path / "usecases"))
    monkeypatch.setenv("MLOPS_USECASE", NAME)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setattr(airflow_settings, "DAGS_FOLDER", str(dags))
    monkeypatch.setenv("MLOPS_BUILD_DATA_DOCS", "false")
    # The smallest split, counted in hours, and minimums for partitions of a few hundred rows.
    split = {"validation_partitions": 1, "test_partitions": 1, "window_partitions": 3}
    monkeypatch.setenv(
        "MLOPS_USECASE_OVERRIDES",
        json.dumps(
            {
                NAME: {
                    "training": {
                        "split": split,
                        "min_train_rows": PEOPLE // 2,
                        "model": {"params": {"max_iter": 40}},
                    },
                    "drift": {"min_partition_rows": PEOPLE // 2},
                    "gates": {"segment_min_rows": 50},
                }
            }
        ),
    )
    runner.dagbag.cache_clear()
    yield dags
    runner.dagbag.cache_clear()


def test_an_hourly_usecase_runs_its_lifecycle_hour_by_hour(runner, scaffolded_dags, tmp_path):
    sample = tmp_path / "shifts_hour0.csv"
    hour_frame(0).to_csv(sample, index=False)
    options = ["--entity", "person_id", "--timestamp", "observed_at", "--label", "on_time"]
    assert (
        main(
            [
                "new-usecase",
                NAME,
                "--from",
                str(sample),
                *options,
                "--cadence",
                "hourly",
                "--dags-dir",
                str(scaffolded_dags),
            ]
        )
        == 0
    )
    settings = get_settings()
    spec = settings.spec
    assert spec.cadence is Cadence.HOURLY
    timetables = {
        s: runner.dagbag().get_dag(f"{NAME}__{s}").timetable for s in ("ingest", "monitor_drift")
    }
    assert timetables["ingest"].expression == "0 * * * *"
    # The drift check runs every hour, half past, on the hour just completed.
    drift = timetables["monitor_drift"]
    assert (drift.expression, drift.interval) == ("30 * * * *", dt.timedelta(hours=1))

    scenarios = {h: "covariate_drift" if h >= DRIFT_FROM else "clean" for h in range(HOURS)}
    lifecycle = run_lifecycle(settings, START, scenarios, PEOPLE, land=land)
    print(table(lifecycle.rows))
    assert unexpected(lifecycle.rows) == []
    rows = lifecycle.rows
    keys = [(START + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in range(HOURS)]
    assert [r["date"] for r in rows] == keys
    assert [p.name for p in sorted(settings.lake_dir.iterdir())] == [f"date={k}" for k in keys]
    assert all(r["rows"] == PEOPLE for r in rows)
    # Three validated hours (train, validation, test): the first model, across midnight.
    assert [r["model"] for r in rows[:2]] == ["-", "-"]
    assert rows[2]["model"].startswith("v1 promoted") and rows[2]["champion"] == "v1"
    tracking = registry.client(settings)
    v1 = tracking.get_model_version(spec.model_name, "1")
    assert v1.tags["mlops.data_window"] == "2025-03-03T22..2025-03-04T00"
    run = tracking.get_run(v1.run_id)
    assert run.data.params["window_test"] == "2025-03-04T00..2025-03-04T00"

    # Each completed hour is checked; the clean ones do not drift, a drifted one retrains.
    assert [r["retrain"] for r in rows[2:DRIFT_FROM]] == ["no"]
    first = next(h for h in range(DRIFT_FROM, HOURS) if rows[h]["retrain"] == "RETRAIN")
    hour = START + dt.timedelta(hours=first)
    night = read_record(settings, hour)
    assert night is not None and night.night == hour and night.decision.retrain is True
    assert float(rows[first]["drift_share"]) >= spec.drift.share_threshold
    assert "v2 " in rows[first]["model"]
    retrained = tracking.get_model_version(spec.model_name, "2")
    assert retrained.tags["mlops.trigger_reason"].startswith("drift")
    assert retrained.tags["mlops.data_window_end"] == keys[first]
