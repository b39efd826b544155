"""The live shadow of the model server: the challenger scores what the champion answered,
queued and batched after the answers, into a log of its own; the answers never change."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlops_pipeline.deployment import registry
from mlops_pipeline.features.on_demand import add_on_demand_features
from mlops_pipeline.serving import shadow as shadow_module
from mlops_pipeline.serving.app import create_app
from mlops_pipeline.serving.champion import ChampionWatcher
from mlops_pipeline.serving.metrics import Metrics
from mlops_pipeline.serving.shadow import LiveShadow, shadow_summary
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
    app = create_app(settings, StaticWatcher(champion), shadow_watcher)
    with TestClient(app) as client:
        answers = [client.post("/predict", json=body) for body in REQUESTS]
        info = client.get("/model").json()
    # Read after the server stopped: stopping scores what the shadow still had queued.
    shadow = app.state.shadow
    metrics = prometheus_samples(shadow.metrics.exposition().decode()) if shadow else []
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
    # The first request (of every TIMED_EVERY) is scored alone and timed; the others batched.
    latency = [v for n, labels, v in metrics if n == "mlops_shadow_latency_seconds_count"]
    assert latency == [1.0]
    timed = {r["request"] for r in shadow_log if r.get("latency_ms") is not None}
    assert timed == {shadow_log[0]["request"]} and shadow_log[1]["request"] == timed.pop()

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


class CountingScorer:
    """The challenger's scorer, counting its calls and failing on rows of ``fail_price``."""

    kind = "counting"

    def __init__(self, scorer, fail_price=None):
        self.scorer, self.fail_price, self.calls = scorer, fail_price, []

    def score(self, columns):
        self.calls.append(len(columns["price"]))
        if self.fail_price in columns["price"]:
            raise ValueError("a price the challenger cannot take")
        return self.scorer.score(columns)


def _shadow(settings, challenger, scorer, tmp_path):
    settings = settings.model_copy(update={"home": tmp_path})
    model = dataclasses.replace(challenger, scorer=scorer)
    metrics = Metrics(settings.spec.model_name, classifier=settings.spec.is_classifier)
    return LiveShadow(settings, metrics, StaticWatcher(model)), settings


def _queue(shadow, settings, champion, prices):
    """One single-row inline request per price, as the app queues it once answered."""
    spec = settings.spec
    for shop, price in enumerate(prices):
        columns = add_on_demand_features(
            spec, {n: [v] for n, v in {**INSTANCE, "shop_id": shop, "price": price}.items()}
        )
        scores = champion.scorer.score(columns)
        shadow.enqueue(columns, [shop], champion, scores, "inline")


def test_queued_requests_are_scored_in_one_call_but_one_in_timed_every_alone(
    served, challenger, tmp_path, monkeypatch
):
    settings, champion = served
    monkeypatch.setattr(shadow_module, "TIMED_EVERY", 4)
    scorer = CountingScorer(challenger.scorer)
    shadow, settings = _shadow(settings, challenger, scorer, tmp_path)
    prices = [10.0 + i for i in range(9)]
    _queue(shadow, settings, champion, prices)
    assert scorer.calls == []  # nothing is scored while requests are answered
    asyncio.run(shadow.stop())
    # Requests 0, 4 and 8 alone (timed), the six others in one call.
    assert sorted(scorer.calls) == [1, 1, 1, 6]
    records = _records(settings.shadow_predictions_dir)
    assert [r[settings.spec.entity.key] for r in records] == list(range(9))
    assert [r["latency_ms"] is not None for r in records if "latency_ms" in r] == [True] * 3
    assert {r[settings.spec.entity.key] for r in records if "latency_ms" in r} == {0, 4, 8}
    for record, price in zip(records, prices, strict=True):
        columns = add_on_demand_features(
            settings.spec, {n: [v] for n, v in {**INSTANCE, "price": price}.items()}
        )
        assert record["score"] == pytest.approx(float(challenger.scorer.score(columns)[0]))
    summary = shadow_summary(settings.shadow_predictions_dir, "4")
    assert (summary.requests, summary.rows, summary.errors) == (9, 9, 0)


def test_a_batch_that_fails_fails_only_the_requests_that_fail_alone(
    served, challenger, tmp_path, monkeypatch
):
    settings, champion = served
    monkeypatch.setattr(shadow_module, "TIMED_EVERY", 100)
    scorer = CountingScorer(challenger.scorer, fail_price=13.0)
    shadow, settings = _shadow(settings, challenger, scorer, tmp_path)
    _queue(shadow, settings, champion, [11.0, 12.0, 13.0, 14.0])
    asyncio.run(shadow.drain())
    records = _records(settings.shadow_predictions_dir)
    failed = [r for r in records if "error" in r]
    assert len(failed) == 1 and "ValueError" in failed[0]["error"]
    key = settings.spec.entity.key
    assert [r[key] for r in records if "error" not in r] == [0, 1, 3]  # 0 timed, alone
    assert failed[0]["request"] != records[0]["request"]
    summary = shadow_summary(settings.shadow_predictions_dir, "4")
    assert (summary.requests, summary.errors) == (3, 1)
    errors = prometheus_samples(shadow.metrics.exposition().decode())
    assert [v for n, _, v in errors if n == "mlops_shadow_errors_total"] == [1.0]


def test_a_full_queue_drops_and_counts_and_stopping_scores_what_is_queued(
    served, challenger, tmp_path, monkeypatch
):
    settings, champion = served
    monkeypatch.setattr(shadow_module, "MAX_QUEUED_ROWS", 3)
    shadow, settings = _shadow(settings, challenger, challenger.scorer, tmp_path)
    _queue(shadow, settings, champion, [11.0, 12.0, 13.0, 14.0, 15.0])
    asyncio.run(shadow.stop())
    samples = prometheus_samples(shadow.metrics.exposition().decode())
    assert [v for n, _, v in samples if n == "mlops_shadow_dropped_total"] == [2.0]
    assert [v for n, _, v in samples if n == "mlops_shadow_predictions_total"] == [3.0]
    assert len(_records(settings.shadow_predictions_dir)) == 3


def test_requests_answered_by_the_challengers_own_version_are_not_shadowed(
    served, challenger, tmp_path
):
    settings, champion = served
    shadow, settings = _shadow(settings, challenger, challenger.scorer, tmp_path)
    _queue(shadow, settings, champion, [11.0])
    _queue(shadow, settings, challenger, [12.0])  # the challenger answered: nothing to compare
    asyncio.run(shadow.drain())
    assert [r["champion_version"] for r in _records(settings.shadow_predictions_dir)] == ["3"]
    _queue(shadow, settings, champion, [13.0])
    # Promoted while the request was queued: the challenger is now the version that answered.
    shadow.watcher.current = dataclasses.replace(challenger, loaded=champion.loaded)
    asyncio.run(shadow.stop())
    assert len(_records(settings.shadow_predictions_dir)) == 1
