"""The live shadow of the model server: the challenger scores what the champion answered, in a
process of its own at idle priority, into a log of its own; the answers never change.

The scoring itself (batches, timed requests, failures) is tested in process on
``ShadowScorer``; the process (its priority, its pipes, its death, stopping) through the app."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import pickle
import signal
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlops_pipeline.deployment import registry
from mlops_pipeline.features.on_demand import add_on_demand_features
from mlops_pipeline.serving import shadow as shadow_module
from mlops_pipeline.serving import shadow_process
from mlops_pipeline.serving.app import create_app
from mlops_pipeline.serving.champion import ChampionWatcher
from mlops_pipeline.serving.prediction_log import PredictionLog
from mlops_pipeline.serving.scorer import CompiledScorer
from mlops_pipeline.serving.shadow import (
    Answered,
    Frames,
    ShadowScorer,
    frame,
    handoff,
    shadow_summary,
)
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
# The process' tests run on one use case: what they test does not depend on the model.
ONE_USECASE = pytest.mark.parametrize("served", ["binary_classification"], indirect=True)


@pytest.fixture(scope="module")
def challenger(served):
    settings, champion = served
    spec = settings.spec
    trained = train_model(spec, labelled_frame(spec, seed=11))
    return served_model(spec, trained, "4", alias="challenger")


def _wait_for_shadow(client, timeout_s=60.0):
    """``/model``'s shadow once the shadow process has said which challenger it scores."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shadow = client.get("/model").json()["shadow"]
        if shadow["version"] is not None:
            return shadow
        time.sleep(0.05)
    raise TimeoutError(f"the shadow process did not load the challenger: {shadow}")


def _answers(settings, champion, shadow_watcher=None):
    app = create_app(settings, StaticWatcher(champion), shadow_watcher)
    with TestClient(app) as client:
        # Answered while the shadow process is still starting: handed to it all the same.
        answers = [client.post("/predict", json=body) for body in REQUESTS]
        info = client.get("/model").json()
        if shadow_watcher is not None:
            info["shadow"] = _wait_for_shadow(client)
    # Read after the server stopped: stopping waits for the shadow process to score it all.
    shadow = app.state.shadow
    metrics = prometheus_samples(shadow.metrics.exposition().decode()) if shadow else []
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.json() for a in answers], metrics, info


def _records(folder):
    return [json.loads(line) for f in folder.glob("date=*/*.jsonl") for line in f.open()]


def _samples(app, name):
    """``name``'s values by version on the app's ``/metrics``."""
    exposition = app.state.shadow.metrics.exposition().decode()
    return {labels["version"]: v for n, labels, v in prometheus_samples(exposition) if n == name}


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
    assert not [n for n, _, _ in metrics if n == "mlops_shadow_dropped_total"]
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


# ---- the scoring, in process ----------------------------------------------------------------


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


def _handed(settings, model, prices, first_shop=1):
    """One single-row inline request per price, answered by ``model``, as the shadow process
    receives them: through the hand-off's bytes, in one read."""
    spec = settings.spec
    data = b""
    for shop, price in enumerate(prices, start=first_shop):
        columns = add_on_demand_features(
            spec, {n: [v] for n, v in {**INSTANCE, "shop_id": shop, "price": price}.items()}
        )
        scores = model.scorer.score(columns)
        data += handoff(columns, [shop], model.version, scores, "inline")
    return [Answered.of(message) for message in Frames().feed(data)]


def _logged(settings, lines, tmp_path):
    """``lines`` written as the shadow process writes them; the settings of that log."""
    settings = settings.model_copy(update={"home": tmp_path})
    shadow_log = PredictionLog(settings.shadow_predictions_dir)
    shadow_log.append(lines)
    shadow_log.close()
    return settings


def test_handed_off_requests_are_scored_in_batches_but_one_in_timed_every_alone(
    served, challenger, tmp_path, monkeypatch
):
    settings, champion = served
    monkeypatch.setattr(shadow_module, "TIMED_EVERY", 4)
    scorer = CountingScorer(challenger.scorer)
    core = ShadowScorer(settings.spec)
    model = dataclasses.replace(challenger, scorer=scorer)
    prices = [10.0 + i for i in range(9)]
    lines, events = core.score(_handed(settings, champion, prices), model)
    # Requests 1, 5 and 9 alone (timed), the six others in one call.
    assert sorted(scorer.calls) == [1, 1, 1, 6]
    assert events.scored == {"4": 9} and events.failed == {}
    assert [version for version, _ in events.timed] == ["4"] * 3
    settings = _logged(settings, lines, tmp_path)
    records = _records(settings.shadow_predictions_dir)
    key = settings.spec.entity.key
    assert [r[key] for r in records] == list(range(1, 10))
    assert {r[key] for r in records if r.get("latency_ms") is not None} == {1, 5, 9}
    for record, price in zip(records, prices, strict=True):
        columns = add_on_demand_features(
            settings.spec, {n: [v] for n, v in {**INSTANCE, "price": price}.items()}
        )
        assert record["score"] == pytest.approx(float(challenger.scorer.score(columns)[0]))
    summary = shadow_summary(settings.shadow_predictions_dir, "4")
    assert (summary.requests, summary.rows, summary.errors) == (9, 9, 0)

    # The count goes on across reads; a call takes at most BATCH_ROWS rows (or one request).
    monkeypatch.setattr(shadow_module, "BATCH_ROWS", 4)
    scorer.calls.clear()
    core.score(_handed(settings, champion, [20.0 + i for i in range(11)]), model)
    # Requests 10 to 20: 13 and 17 timed, alone, as they come; 10-12 with 14 and 15-16 with
    # 18-19 in calls of four rows; 20, the rest, alone.
    assert scorer.calls == [1, 4, 1, 4, 1]


def test_a_batch_that_fails_fails_only_the_requests_that_fail_alone(
    served, challenger, tmp_path, monkeypatch
):
    settings, champion = served
    monkeypatch.setattr(shadow_module, "TIMED_EVERY", 100)
    scorer = CountingScorer(challenger.scorer, fail_price=13.0)
    core = ShadowScorer(settings.spec)
    model = dataclasses.replace(challenger, scorer=scorer)
    lines, events = core.score(_handed(settings, champion, [11.0, 12.0, 13.0, 14.0]), model)
    settings = _logged(settings, lines, tmp_path)
    records = _records(settings.shadow_predictions_dir)
    failed = [r for r in records if "error" in r]
    assert len(failed) == 1 and "ValueError" in failed[0]["error"]
    key = settings.spec.entity.key
    assert [r[key] for r in records if "error" not in r] == [1, 2, 4]  # 1 timed, alone
    assert failed[0]["request"] != records[0]["request"]
    summary = shadow_summary(settings.shadow_predictions_dir, "4")
    assert (summary.requests, summary.errors) == (3, 1)
    assert events.failed == {"4": 1} and events.scored == {"4": 3}


def test_requests_answered_by_the_challengers_own_version_are_not_shadowed(
    served, challenger, tmp_path
):
    settings, champion = served
    core = ShadowScorer(settings.spec)
    handed = _handed(settings, champion, [11.0]) + _handed(settings, challenger, [12.0])
    lines, events = core.score(handed, challenger)  # the challenger answered #2: no comparison
    assert [line["champion_version"] for line in lines] == ["3"] and events.scored == {"4": 1}
    # Promoted since the request was answered: the challenger is now the version that answered.
    promoted = dataclasses.replace(challenger, loaded=champion.loaded)
    lines, events = core.score(_handed(settings, champion, [13.0]), promoted)
    assert lines == [] and not events


def test_the_pipes_frames_are_whole_whatever_pieces_they_arrive_in():
    messages = [("a", 1), {"b": [2.0, None]}, "c" * 70_000]
    data = b"".join(frame(m) for m in messages)
    frames = Frames()
    got = []
    for start in range(0, len(data), 7):
        got += frames.feed(data[start : start + 7])
    assert got == messages and frames.feed(b"") == []


def test_the_watcher_handed_to_the_shadow_process_is_rebuilt_there(served, challenger):
    settings, _ = served
    copy = pickle.loads(shadow_process.portable(StaticWatcher(challenger)))
    assert copy.current.version == "4" and copy.current.threshold == challenger.threshold
    if isinstance(challenger.scorer, CompiledScorer):  # closures: compiled again from the model
        assert copy.current.scorer is not challenger.scorer
        # With what was verified here: large batches go to the tree predictors there too.
        assert copy.current.scorer.matrix_agrees == challenger.scorer.matrix_agrees
    rows = {n: [v] for n, v in INSTANCE.items()}
    columns = add_on_demand_features(settings.spec, rows)
    assert copy.current.scorer.score(columns) == challenger.scorer.score(columns)
    # The registry's watcher: a new one on the same alias, not yet started.
    watcher = ChampionWatcher(settings, alias="challenger", keep_unassigned=False)
    watcher.current = challenger
    rebuilt = pickle.loads(shadow_process.portable(watcher))
    assert isinstance(rebuilt, ChampionWatcher) and rebuilt.current is None
    assert (rebuilt.alias, rebuilt.keep_unassigned) == ("challenger", False)


# ---- the process -----------------------------------------------------------------------------


def _single(shop):
    return {"instances": [{**INSTANCE, "shop_id": shop}]}


@ONE_USECASE
def test_the_shadow_process_runs_at_idle_priority_and_serving_outlives_it(
    served, challenger, tmp_path
):
    settings, champion = served
    shadowed = settings.model_copy(update={"home": tmp_path, "serving_shadow": True})
    app = create_app(shadowed, StaticWatcher(champion), StaticWatcher(challenger))
    # Before the lifespan started it: no challenger yet, and why.
    starting = TestClient(app).get("/model").json()["shadow"]
    assert starting == {"alias": "challenger", "version": None, "reason": shadow_module.STARTING}
    with TestClient(app) as client:
        _wait_for_shadow(client)
        shadow = app.state.shadow
        assert shadow.pid != os.getpid()
        threads = os.listdir(f"/proc/{shadow.pid}/task")
        policies = {os.sched_getscheduler(int(t)) for t in threads}
        nices = {os.getpriority(os.PRIO_PROCESS, int(t)) for t in threads}
        assert policies == {os.SCHED_IDLE} or nices == {19}, (policies, nices)
        assert shadow.priority.policy == "idle" or shadow.priority.nice == 19
        assert shadow.priority.threads == 1  # no OpenMP team spinning on the server's core
        assert client.post("/predict", json=_single(1)).status_code == 200

        os.kill(shadow.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while client.get("/model").json()["shadow"]["reason"] is None:
            assert time.monotonic() < deadline, "the server did not notice the shadow died"
            time.sleep(0.05)
        info = client.get("/model").json()["shadow"]
        assert info["version"] is None and "exited" in info["reason"], info
        answers = [client.post("/predict", json=_single(shop)) for shop in (2, 3, 4)]
        assert [a.status_code for a in answers] == [200] * 3
        assert {a.json()["model_version"] for a in answers} == {"3"}
    # Stopping a server whose shadow died returns; the requests after it are counted dropped.
    assert _samples(app, "mlops_shadow_dropped_total") == {"4": 3.0}
    assert len(_records(settings.model_copy(update={"home": tmp_path}).predictions_dir)) == 4


@ONE_USECASE
def test_a_full_pipe_drops_and_counts_and_stopping_scores_what_was_handed_off(
    served, challenger, tmp_path, monkeypatch
):
    settings, champion = served
    monkeypatch.setattr(shadow_module, "PIPE_BYTES", 4096)  # the least the kernel gives
    monkeypatch.setattr(shadow_module, "MAX_PENDING_BYTES", 4096)
    shadowed = settings.model_copy(update={"home": tmp_path, "serving_shadow": True})
    app = create_app(shadowed, StaticWatcher(champion), StaticWatcher(challenger))
    sent = 60
    with TestClient(app) as client:
        _wait_for_shadow(client)
        shadow = app.state.shadow
        os.kill(shadow.pid, signal.SIGSTOP)  # a shadow process that gets no CPU
        try:
            answers = [client.post("/predict", json=_single(s)) for s in range(1, sent + 1)]
            assert [a.status_code for a in answers] == [200] * sent
            assert shadow._pending  # held by the server, beyond what the pipe took
        finally:
            os.kill(shadow.pid, signal.SIGCONT)
    dropped = _samples(app, "mlops_shadow_dropped_total").get("4", 0)
    scored = _samples(app, "mlops_shadow_predictions_total").get("4", 0)
    assert 0 < dropped < sent and dropped + scored == sent
    # Every request handed off was scored before the server stopped, the held ones included.
    records = _records(shadowed.shadow_predictions_dir)
    assert len(records) == scored and all("error" not in r for r in records)
    key = settings.spec.entity.key
    assert [r[key] for r in records] == list(range(1, int(scored) + 1))


def test_a_shadow_that_cannot_start_leaves_serving_up_and_counts_drops(
    served, challenger, tmp_path, monkeypatch
):
    import multiprocessing

    settings, champion = served

    def refuse(method):
        raise OSError("no processes left")

    monkeypatch.setattr(multiprocessing, "get_context", refuse)
    shadowed = settings.model_copy(update={"home": tmp_path, "serving_shadow": True})
    app = create_app(shadowed, StaticWatcher(champion), StaticWatcher(challenger))
    with TestClient(app) as client:
        answer = client.post("/predict", json={"instances": [INSTANCE, INSTANCE]})
        info = client.get("/model").json()["shadow"]
    assert answer.status_code == 200 and answer.json()["model_version"] == "3"
    assert info["version"] is None and "no processes left" in info["reason"]
    assert _samples(app, "mlops_shadow_dropped_total") == {shadow_module.UNKNOWN_VERSION: 2.0}


@ONE_USECASE
def test_without_a_watcher_the_shadow_process_watches_the_registrys_challenger(served, tmp_path):
    settings, champion = served
    shadowed = settings.model_copy(update={"home": tmp_path, "serving_shadow": True})
    app = create_app(shadowed, StaticWatcher(champion))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while (info := client.get("/model").json()["shadow"])["reason"] == shadow_module.STARTING:
            assert time.monotonic() < deadline, "the shadow process did not report"
            time.sleep(0.1)
        assert info == {
            "alias": "challenger",
            "version": None,
            "reason": f"{settings.spec.model_name} has no @challenger yet",
        }
        assert client.post("/predict", json=_single(1)).status_code == 200
    # No challenger: nothing handed off, nothing dropped, nothing logged.
    assert _samples(app, "mlops_shadow_dropped_total") == {}
    assert _records(shadowed.shadow_predictions_dir) == []
