"""The live shadow of the model server: the challenger scores what the champion answered,
after the answer, into a log of its own; the answers never change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlops_pipeline.deployment import registry
from mlops_pipeline.features.on_demand import add_on_demand_features
from mlops_pipeline.serving.app import create_app
from mlops_pipeline.serving.champion import ChampionWatcher
from mlops_pipeline.serving.shadow import shadow_summary
from mlops_pipeline.training.model import train_model
from tests.conftest import prometheus_samples
from tests.unit.small_usecase import labelled_frame, served_model
from tests.unit.test_serving_app import INSTANCE, StandInReader, StaticWatcher, served

__all__ = ["served"]  # the fixture, shared with the app's tests

REQUESTS = [
    {"instances": [{**INSTANCE, "shop_id": 21}, {**INSTANCE, "colour": "blue", "size": 3}]},
    {"entities": {"shop_id": [7, 99, 8]}},
    {"instances": [{**INSTANCE, "price": 5.0}]},
]


@pytest.fixture(scope="module")
def challenger(served):
    settings, champion = served
    spec = settings.spec
    trained = train_model(spec, labelled_frame(spec, seed=11))
    return served_model(spec, trained, "4", alias="challenger")


def _answers(settings, champion, shadow_watcher=None):
    with TestClient(create_app(settings, StaticWatcher(champion), shadow_watcher)) as client:
        answers = [client.post("/predict", json=body) for body in REQUESTS]
        metrics = prometheus_samples(client.get("/metrics").text)
        info = client.get("/model").json()
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.json() for a in answers], metrics, info


def _records(folder):
    return [json.loads(line) for f in folder.glob("date=*/*.jsonl") for line in f.open()]


@pytest.fixture
def reader(monkeypatch):
    import mlops_pipeline.features.access as access

    monkeypatch.setattr(access, "OnlineFeatureReader", StandInReader)


def test_answers_are_the_champions_with_the_shadow_on_and_the_shadow_logs_apart(
    served, challenger, reader, tmp_path
):
    settings, champion = served
    without, _, info_off = _answers(
        settings.model_copy(update={"home": tmp_path / "off"}), champion
    )
    shadowed = settings.model_copy(update={"home": tmp_path / "on", "serving_shadow": True})
    with_shadow, metrics, info_on = _answers(shadowed, champion, StaticWatcher(challenger))
    assert with_shadow == without
    assert info_off["shadow"] is None
    assert info_on["shadow"] == {"alias": "challenger", "version": "4", "reason": None}

    served_log = _records(shadowed.predictions_dir)
    assert {r["model_version"] for r in served_log} == {"3"} and len(served_log) == 5
    shadow_log = _records(shadowed.shadow_predictions_dir)
    key = settings.spec.entity.key
    assert [r[key] for r in shadow_log] == [21, None, 7, 8, None]
    assert {r["model_version"] for r in shadow_log} == {"4"}
    assert {r["champion_version"] for r in shadow_log} == {"3"}
    # Each shadow record carries the champion's score of the same row, as answered.
    answered = [p[settings.spec.serving.score_field] for a in without for p in a["predictions"]]
    assert [r["champion_score"] for r in shadow_log] == answered
    spec = settings.spec
    last = {n: [v] for n, v in {**INSTANCE, "price": 5.0}.items()}
    expected = challenger.scorer.score(add_on_demand_features(spec, last))
    assert shadow_log[-1]["score"] == pytest.approx(float(expected[0]))

    rows = {
        labels["version"]: v for n, labels, v in metrics if n == "mlops_shadow_predictions_total"
    }
    assert rows == {"4": 5.0}
    latency = [v for n, labels, v in metrics if n == "mlops_shadow_latency_seconds_count"]
    assert latency == [3.0]

    summary = shadow_summary(shadowed.shadow_predictions_dir, "4", threshold=champion.threshold)
    assert (summary.requests, summary.rows, summary.errors) == (3, 5, 0)
    assert summary.p99_ms is not None and summary.p99_ms > 0
    if settings.spec.is_classifier:
        agree = [r["decision"] == (r["champion_score"] >= champion.threshold) for r in shadow_log]
        assert summary.agreement == pytest.approx(np.mean(agree))
    else:
        assert summary.agreement is None


class BrokenScorer:
    kind = "broken"

    def score(self, columns):
        raise KeyError("a column the challenger wants")


def test_a_failing_shadow_changes_no_answer_and_is_counted(served, challenger, reader, tmp_path):
    settings, champion = served
    without, _, _ = _answers(settings.model_copy(update={"home": tmp_path / "off"}), champion)
    broken = dataclasses.replace(challenger, scorer=BrokenScorer())
    shadowed = settings.model_copy(update={"home": tmp_path / "on", "serving_shadow": True})
    with_shadow, metrics, _ = _answers(shadowed, champion, StaticWatcher(broken))
    assert with_shadow == without
    errors = {labels["version"]: v for n, labels, v in metrics if n == "mlops_shadow_errors_total"}
    assert errors == {"4": 3.0}
    summary = shadow_summary(shadowed.shadow_predictions_dir, "4")
    assert (summary.requests, summary.rows, summary.errors) == (0, 0, 3)
    assert all("KeyError" in r["error"] for r in _records(shadowed.shadow_predictions_dir))


def test_the_shadow_stops_when_the_challenger_loses_its_alias(served, challenger, monkeypatch):
    settings, _ = served
    monkeypatch.setattr(registry, "client", lambda settings: None)
    monkeypatch.setattr(registry, "version_for_alias", lambda tracking, name, alias: None)
    shadow = ChampionWatcher(settings, alias="challenger", keep_unassigned=False)
    champion = ChampionWatcher(settings)
    shadow.current = champion.current = challenger
    shadow.refresh(), champion.refresh()
    assert shadow.current is None and "no @challenger" in shadow.last_error
    assert champion.current is challenger  # a champion is served until replaced


def test_the_summary_reads_only_its_version_and_days(tmp_path):
    folder = tmp_path / "date=2025-03-10"
    folder.mkdir()
    lines = [
        {"model_version": "4", "request": "a", "latency_ms": 1.0, "ts": "t"},
        {"model_version": "4", "request": "a", "latency_ms": 1.0, "ts": "t"},
        {"model_version": "5", "request": "b", "latency_ms": 9.0, "ts": "t"},
        {"model_version": "4", "request": "c", "error": "boom", "rows": 1},
    ]
    (folder / "predictions-1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    summary = shadow_summary(tmp_path, "4")
    assert (summary.requests, summary.rows, summary.errors, summary.p99_ms) == (1, 2, 1, 1.0)
    later = shadow_summary(tmp_path, "4", since=dt.date(2025, 3, 11))
    assert (later.requests, later.errors) == (0, 0)


def test_the_shadow_runs_on_the_event_loop_after_the_answer():
    """Starlette runs a plain function as a background task on its thread pool, where the
    shadow's NumPy work would hold the GIL against the requests the loop serves; a coroutine
    runs on the loop itself, after the response is sent."""
    import inspect

    from mlops_pipeline.serving.shadow import LiveShadow

    assert inspect.iscoroutinefunction(LiveShadow.score_after)
