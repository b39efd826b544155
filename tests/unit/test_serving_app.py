"""The model server's app for any declared use case, in process (no Feast, no MLflow): a
hand-written classifier and regressor, scored inline and from a stand-in online store."""

from __future__ import annotations

import datetime as dt
import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlops_pipeline.config import Settings
from mlops_pipeline.features.on_demand import add_on_demand_features
from mlops_pipeline.serving import online
from mlops_pipeline.serving.app import create_app
from mlops_pipeline.serving.champion import LoadedModel
from mlops_pipeline.serving.scorer import PipelineScorer
from mlops_pipeline.training.model import train_model
from tests.conftest import prometheus_samples
from tests.unit.small_usecase import (
    labelled_frame,
    served_model,
    small_declaration,
    write_usecase,
)

INSTANCE = {
    "size": 12,
    "price": 40.0,
    "temperature": None,
    "colour": "red",
    "channel": "web",
    "promo": True,
}


class StaticWatcher:
    """A champion that never moves."""

    def __init__(self, model: LoadedModel) -> None:
        self.current, self.last_error, self.on_swap = model, None, []

    def start(self) -> None: ...

    def stop(self) -> None: ...


class StandInReader:
    """The online store: known shops have features, others come back all None."""

    known = {7: INSTANCE, 8: {**INSTANCE, "size": 40, "colour": "blue", "promo": False}}

    def __init__(self, settings: Settings) -> None: ...

    def read(self, ids):
        rows = [self.known.get(i, dict.fromkeys(INSTANCE)) for i in ids]
        return {"shop_id": list(ids), **{n: [r[n] for r in rows] for n in INSTANCE}}


@pytest.fixture(scope="module", params=["binary_classification", "regression"])
def served(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("usecases")
    name = "shop_signal" if request.param == "binary_classification" else "shop_demand"
    calibration = "isotonic" if request.param == "binary_classification" else "none"
    write_usecase(root, small_declaration(request.param, calibration, name=name))
    settings = Settings(usecases_dir=root, usecase=name, home=root / "home")
    spec = settings.spec
    trained = train_model(spec, labelled_frame(spec))
    return settings, served_model(spec, trained, "3", loaded_at="2025-03-12T00:00:00+00:00")


@pytest.fixture
def client(served, monkeypatch):
    import mlops_pipeline.features.access as access

    monkeypatch.setattr(access, "OnlineFeatureReader", StandInReader)
    settings, model = served
    with TestClient(create_app(settings, StaticWatcher(model))) as client:
        yield client


def _expected(settings: Settings, model: LoadedModel, rows: list[dict]) -> np.ndarray:
    spec = settings.spec
    columns = {n: [r[n] for r in rows] for n in spec.feature_columns}
    return PipelineScorer(model.model, spec).score(add_on_demand_features(spec, columns))


def test_inline_instances_are_scored_with_the_declared_fields(client, served):
    settings, model = served
    spec = settings.spec
    rows = [{**INSTANCE, "shop_id": 5}, {**INSTANCE, "colour": "green", "size": 0}]
    response = client.post("/predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = _expected(settings, model, rows)
    assert body["model_name"] == spec.model_name and body["model_version"] == "3"
    assert body["threshold"] == model.threshold and body["unknown"] == []
    score = spec.serving.score_field
    assert [p["shop_id"] for p in body["predictions"]] == [5, None]
    np.testing.assert_array_equal([p[score] for p in body["predictions"]], expected)
    if spec.is_classifier:
        decisions = [p[spec.serving.decision_field] for p in body["predictions"]]
        assert decisions == [bool(s >= model.threshold) for s in expected]
        assert set(body["predictions"][0]) == {"shop_id", score, spec.serving.decision_field}
    else:
        assert body["threshold"] is None
        assert set(body["predictions"][0]) == {"shop_id", score}


def test_entities_are_looked_up_and_unknown_ones_reported(client, served):
    settings, model = served
    spec = settings.spec
    response = client.post("/predict", json={"entities": {"shop_id": [7, 99, 8]}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["shop_id"] for p in body["predictions"]] == [7, 8]
    assert body["unknown"] == [
        {"shop_id": 99, "error": "unknown shop: no features in the online store"}
    ]
    known = [{**StandInReader.known[i]} for i in (7, 8)]
    got = [p[spec.serving.score_field] for p in body["predictions"]]
    np.testing.assert_array_equal(got, _expected(settings, model, known))


def test_predictions_are_logged_under_the_use_case_with_generic_keys(client, served):
    settings, model = served
    spec = settings.spec
    client.post("/predict", json={"instances": [{**INSTANCE, "shop_id": 11}]})
    day = dt.datetime.now(dt.UTC).date().isoformat()
    folder = settings.predictions_dir / f"date={day}"
    assert settings.predictions_dir.name == spec.name
    records = [
        json.loads(line) for f in folder.glob("*.jsonl") for line in f.read_text().splitlines()
    ]
    (mine,) = [r for r in records if r["shop_id"] == 11]
    assert mine["source"] == "inline" and mine["model_version"] == "3"
    assert isinstance(mine["score"], float)
    assert ("decision" in mine) == spec.is_classifier
    assert set(spec.model_features) <= set(mine)
    assert mine["price_per_size"] == pytest.approx(40.0 / 12)


def test_metrics_carry_the_model_name(client, served):
    settings, model = served
    spec = settings.spec
    client.post("/predict", json={"instances": [INSTANCE, INSTANCE]})
    samples = prometheus_samples(client.get("/metrics").text)
    info = [(labels, v) for n, labels, v in samples if n == "mlops_model_info"]
    assert info == [({"model": spec.model_name, "alias": "champion", "version": "3"}, 1.0)]
    totals = {
        labels.get("decision"): v for n, labels, v in samples if n == "mlops_predictions_total"
    }
    if spec.is_classifier:
        assert set(totals) <= {"true", "false"} and sum(totals.values()) >= 2
    else:
        assert set(totals) == {None} and totals[None] >= 2
    latency = [labels for n, labels, _ in samples if n == "mlops_predict_latency_seconds_count"]
    assert latency == [{"model": spec.model_name}]


def test_the_openapi_shows_the_use_case(client, served):
    settings, _ = served
    spec = settings.spec
    openapi = client.get("/openapi.json").json()
    assert openapi["info"]["title"] == f"{spec.model_name} model server"
    schemas = openapi["components"]["schemas"]
    instance = next(s for n, s in schemas.items() if n.endswith("Instance"))
    assert set(instance["properties"]) == {"shop_id", *spec.feature_columns}
    prediction = next(s for n, s in schemas.items() if n.endswith("Prediction"))
    assert spec.serving.score_field in prediction["properties"]
    assert client.get("/docs").status_code == 200


def test_bad_payloads_get_a_422_naming_the_field(client):
    response = client.post("/predict", json={"instances": [{**INSTANCE, "colour": "gold"}]})
    assert response.status_code == 422
    assert any("colour" in error["loc"] for error in response.json()["detail"])
    for payload in ({}, {"entities": {"shop_id": []}}, {"customer_ids": [1]}):
        assert client.post("/predict", json=payload).status_code == 422


class FlakyReader(StandInReader):
    """An online store that fails (``error``) or hangs (``delay_s``) until told otherwise."""

    error: Exception | None = ConnectionError("connection refused")
    delay_s = 0.0

    def read(self, ids):
        time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return super().read(ids)


@pytest.fixture
def flaky_client(served, monkeypatch):
    import mlops_pipeline.features.access as access

    monkeypatch.setattr(access, "OnlineFeatureReader", FlakyReader)
    monkeypatch.setattr(FlakyReader, "error", ConnectionError("connection refused"))
    settings, model = served
    with TestClient(create_app(settings, StaticWatcher(model))) as client:
        yield client


def test_a_failing_online_store_is_a_503_and_not_ready_until_it_answers(flaky_client, monkeypatch):
    lookup = {"entities": {"shop_id": [7]}}
    down = flaky_client.post("/predict", json=lookup)
    assert down.status_code == 503
    assert down.json()["detail"] == (
        "online store unavailable: ConnectionError: connection refused"
    )
    ready = flaky_client.get("/ready")
    assert ready.status_code == 503 and "connection refused" in ready.json()["reason"]
    assert flaky_client.post("/predict", json={"instances": [INSTANCE]}).status_code == 200

    monkeypatch.setattr(FlakyReader, "error", None)
    # Within the recheck period the verdict stands without asking the store again.
    assert flaky_client.get("/ready").status_code == 503
    monkeypatch.setattr(online, "RECHECK_S", 0.0)
    assert flaky_client.get("/ready").json()["ready"] is True
    assert flaky_client.post("/predict", json=lookup).status_code == 200


def test_a_hanging_online_store_is_given_up_after_the_deadline(flaky_client, monkeypatch):
    monkeypatch.setattr(FlakyReader, "error", None)
    monkeypatch.setattr(FlakyReader, "delay_s", 1.0)
    monkeypatch.setattr(online, "READ_DEADLINE_S", 0.2)
    monkeypatch.setattr(online, "RECHECK_S", 0.0)
    started = time.monotonic()
    response = flaky_client.post("/predict", json={"entities": {"shop_id": [7]}})
    assert time.monotonic() - started < 0.9
    assert response.status_code == 503 and "no answer within 0.2 s" in response.json()["detail"]


def test_lookups_queued_behind_slow_answers_wait_instead_of_failing(served, monkeypatch):
    """Reads that answer, one at a time, in 0.15 s each: eight at once queue for 1.2 s, over a
    0.5 s deadline, and every one is answered (the deadline is the read's, not the queue's)."""
    import asyncio

    import mlops_pipeline.features.access as access

    monkeypatch.setattr(access, "OnlineFeatureReader", FlakyReader)
    monkeypatch.setattr(FlakyReader, "error", None)
    monkeypatch.setattr(online, "READ_DEADLINE_S", 0.5)
    settings, _ = served
    store = online.OnlineStore(settings)
    store.open()
    monkeypatch.setattr(FlakyReader, "delay_s", 0.15)

    async def eight_at_once():
        return await asyncio.gather(*(store.read([7]) for _ in range(8)), return_exceptions=True)

    try:
        answers = asyncio.run(eight_at_once())
    finally:
        store.close()
    assert [a["shop_id"] for a in answers] == [[7]] * 8, answers
