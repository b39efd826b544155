"""The model server over real HTTP: a uvicorn process on a free port."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mlops_pipeline.config import Settings
from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.deployment import registry
from mlops_pipeline.deployment.promotion import promote
from mlops_pipeline.deployment.smoke import smoke_test
from mlops_pipeline.features.access import OnlineFeatureReader
from mlops_pipeline.features.materialization import days_interval, materialize_interval
from mlops_pipeline.features.store import register_definitions
from mlops_pipeline.serving.process import running_server
from mlops_pipeline.training.job import TrainingRequest, train_and_register
from mlops_pipeline.training.model import model_inputs
from tests.conftest import prometheus_samples
from tests.e2e.conftest import DAYS, ROWS


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Settings:
    """Validated days, online features, two trained versions, v1 champion."""
    settings = Settings(
        home=tmp_path_factory.mktemp("serving") / "home",
        min_batch_rows=50,
        usecase="churn",
        usecase_overrides=json.dumps(
            {"churn": {"training": {"min_train_rows": 100, "model": {"params": {"max_iter": 40}}}}}
        ),
    )
    for day in DAYS:
        generate_day(settings, day, ROWS, file_format="parquet")
        ingest_day(settings.replace(build_data_docs=False), day)
    register_definitions(settings)
    materialize_interval(settings, *days_interval(DAYS))
    for reason in ("v1", "v2"):
        train_and_register(settings, TrainingRequest(DAYS[-1], 28, reason=reason))
    promote(settings, "1")
    return settings


@pytest.fixture(scope="module")
def server(platform):
    with running_server(platform, {"MLOPS_SERVING_POLL_SECONDS": "0.5"}) as base:
        yield base


def test_health_ready_model_and_metrics(server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server}/ready").json()["ready"] is True
    model = httpx.get(f"{server}/model").json()
    assert (model["name"], model["version"], model["alias"]) == (
        "churn-classifier",
        "1",
        "champion",
    )
    httpx.post(f"{server}/predict", json={"entities": {"customer_id": [1, 2, 3]}})
    text = httpx.get(f"{server}/metrics").text
    samples = prometheus_samples(text)
    names = {name for name, _, _ in samples}
    assert "mlops_predict_latency_seconds_bucket" in names
    counted = {
        labels["decision"]: value
        for name, labels, value in samples
        if name == "mlops_predictions_total" and labels["model"] == "churn-classifier"
    }
    assert set(counted) == {"true", "false"} and sum(counted.values()) >= 3
    assert _model_info(text) == {"1": 1.0}


def test_predictions_match_the_model_loaded_directly(server, platform):
    import mlflow

    spec = platform.spec
    ids = list(range(1, 51))
    response = httpx.post(f"{server}/predict", json={"entities": {"customer_id": ids}})
    assert response.status_code == 200
    served = response.json()
    assert served["model_version"] == "1" and served["unknown"] == []
    mlflow.set_tracking_uri(platform.tracking_uri)
    model = mlflow.sklearn.load_model("models:/churn-classifier/1")
    features = OnlineFeatureReader(platform).read(ids)
    import pandas as pd

    expected = model.predict_proba(model_inputs(spec, pd.DataFrame(features)))[:, 1]
    got = np.array([p["churn_probability"] for p in served["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert [p["customer_id"] for p in served["predictions"]] == ids

    decisions = [p["churn"] for p in served["predictions"]]
    assert decisions == [bool(p >= served["threshold"]) for p in got]

    # The same customer's features inline give the same answer.
    row = {k: features[k][0] for k in spec.feature_columns}
    inline = httpx.post(f"{server}/predict", json={"instances": [row]}).json()
    assert inline["predictions"][0]["churn_probability"] == pytest.approx(expected[0], abs=1e-12)
    assert inline["predictions"][0]["customer_id"] is None


def test_unknown_customers_get_a_clear_answer(server):
    response = httpx.post(f"{server}/predict", json={"entities": {"customer_id": [1, 10**9]}})
    assert response.status_code == 200
    body = response.json()
    assert [p["customer_id"] for p in body["predictions"]] == [1]
    assert body["unknown"][0]["customer_id"] == 10**9
    assert "unknown customer" in body["unknown"][0]["error"]


def test_bad_payloads_get_a_4xx_with_a_message(server):
    for payload in (
        {},
        {"entities": {"customer_id": []}},
        {"entities": {"customer_id": ["x"]}},
        {"entities": {"store_id": [1]}},
        {"customer_ids": [1]},
        {"entities": {"customer_id": [1]}, "instances": []},
        {"instances": [{"plan": "gold"}]},
    ):
        response = httpx.post(f"{server}/predict", json=payload)
        assert response.status_code == 422, payload
        assert response.json()["detail"]
    assert httpx.post(f"{server}/predict", content=b"not json").status_code == 422


def test_predictions_are_logged_by_day(server, platform):
    httpx.post(f"{server}/predict", json={"entities": {"customer_id": [5]}})
    folder = platform.predictions_dir / f"date={dt.datetime.now(dt.UTC).date().isoformat()}"
    records = [
        json.loads(line) for f in folder.glob("*.jsonl") for line in f.read_text().splitlines()
    ]
    mine = [r for r in records if r["customer_id"] == 5]
    assert mine and mine[-1]["model_version"] in {"1", "2"}
    assert isinstance(mine[-1]["score"], float) and isinstance(mine[-1]["decision"], bool)
    assert mine[-1]["source"] == "online"
    assert set(platform.spec.model_features) <= set(mine[-1])


_SPEC = Settings(usecase="churn").spec
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "entities": st.fixed_dictionaries(
            {},
            optional={
                "customer_id": st.lists(st.integers(-5, 10**12) | st.text(max_size=3), max_size=5)
            },
        ),
        "instances": st.lists(
            st.fixed_dictionaries(
                {},
                optional={name: json_values for name in (*_SPEC.feature_columns, "customer_id")},
            ),
            max_size=3,
        ),
    },
)


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=json_values | near_valid)
def test_fuzzed_payloads_never_produce_a_5xx(server, payload):
    response = httpx.post(f"{server}/predict", content=json.dumps(payload, allow_nan=True))
    assert response.status_code < 500, (payload, response.text)


def test_alias_change_is_picked_up_without_dropping_requests(server, platform):
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client() as session:
            while not stop.is_set():
                response = session.post(
                    f"{server}/predict", json={"entities": {"customer_id": [1, 2]}}
                )
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.add(response.json()["model_version"])

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(1)
        promote(platform, "2")
        deadline = time.monotonic() + 60
        while httpx.get(f"{server}/model").json()["version"] != "2":
            assert time.monotonic() < deadline, "the server never picked up the new champion"
            time.sleep(0.2)
        time.sleep(1)
    finally:
        stop.set()
        thread.join()
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests: {set(statuses)}"
    assert versions == {"1", "2"}
    served = _model_info(httpx.get(f"{server}/metrics").text)
    assert served == {"1": 0.0, "2": 1.0}, served  # the replaced version is no longer served


def _model_info(exposition: str) -> dict[str, float]:
    """version -> value of ``mlops_model_info`` for the champion alias in a /metrics page."""
    return {
        labels["version"]: value
        for name, labels, value in prometheus_samples(exposition)
        if name == "mlops_model_info"
        and labels["alias"] == "champion"
        and labels["model"] == "churn-classifier"
    }


def _predicted(exposition: str) -> float:
    return sum(
        value
        for name, _, value in prometheus_samples(exposition)
        if name == "mlops_predictions_total"
    )


def _load_until_both_workers_answer(
    platform: Settings, base: str, champion: str, started: float
) -> tuple[set[int], int]:
    """Concurrent requests, each on a new connection, until the prediction logs show that two
    worker processes answered. Both workers wait on the one listening socket and the first to
    wake takes the connection, so one-at-a-time requests may all land on the same worker while
    the other never wins a race; with requests in flight, the busy worker cannot accept.
    Returns the workers' pids and the number of requests sent (two customers each)."""
    today = dt.datetime.now(dt.UTC).date().isoformat()
    log_dir = platform.predictions_dir / f"date={today}"

    def predict(_: int) -> None:
        response = httpx.post(f"{base}/predict", json={"entities": {"customer_id": [7, 8]}})
        assert response.status_code == 200 and response.json()["model_version"] == champion

    requests, workers = 0, set()
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(workers) < 2 and time.monotonic() < deadline:
            list(pool.map(predict, range(40)))
            requests += 40
            workers = {
                int(f.stem.rsplit("-", 1)[1])
                for f in log_dir.glob("*.jsonl")
                if f.stat().st_mtime >= started
            }
    assert len(workers) == 2, f"{requests} requests, answered by {workers}"
    return workers, requests


def test_workers_share_the_requests_and_report_one_set_of_metrics(platform):
    tracking = registry.client(platform)
    champion = registry.version_for_alias(tracking, platform.spec.model_name, "champion")
    champion = str(champion.version)
    other = "1" if champion == "2" else "2"
    env = {"MLOPS_SERVING_WORKERS": "2", "MLOPS_SERVING_POLL_SECONDS": "0.5"}
    started = time.time()
    with running_server(platform, env) as base:
        workers, requests = _load_until_both_workers_answer(platform, base, champion, started)
        # Whichever worker answers /metrics, it reports every worker's predictions.
        for _ in range(6):
            exposition = httpx.get(f"{base}/metrics").text
            assert _predicted(exposition) == 2 * requests, exposition
            assert _model_info(exposition) == {champion: 1.0}

        promote(platform, other)
        # The post-promotion smoke test passes only once every worker serves the new version.
        smoke = platform.replace(serving_url=base, smoke_timeout_seconds=60)
        assert smoke_test(smoke, other)["version"] == other
        assert _model_info(httpx.get(f"{base}/metrics").text) == {champion: 0.0, other: 1.0}
        assert {httpx.get(f"{base}/model").json()["version"] for _ in range(8)} == {other}
    for pid in workers:  # stopping the server stops its workers
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
