"""Faults injected into a real model server: hostile payloads and bodies over real HTTP, an
online store (Redis, the production profile) that goes away behind a TCP proxy this test owns,
and a fuzz of the whole OpenAPI. The server is the real app under uvicorn on a free port (or
in process through httpx for the fuzz), with a model trained here and real Feast stores."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mlops_pipeline.config import Settings
from mlops_pipeline.features.materialization import days_interval, materialize_interval
from mlops_pipeline.features.on_demand import add_on_demand_features
from mlops_pipeline.features.store import register_definitions
from mlops_pipeline.serving import online
from mlops_pipeline.serving.app import create_app
from mlops_pipeline.serving.champion import LoadedModel
from mlops_pipeline.serving.limits import body_limit
from mlops_pipeline.serving.process import free_port
from mlops_pipeline.training.model import train_model
from tests.conftest import skip_or_fail
from tests.unit import feature_usecases as shops
from tests.unit.small_usecase import served_model
from tests.unit.test_serving_app import StaticWatcher

NAME = "shop_faults"
SHOPS = 30
MAX_BATCH = 50
DAYS = [shops.D0 + dt.timedelta(days=i) for i in range(4)]
SHORT_ANSWER = 4096  # bytes: what a 422 may cost, whatever the payload
REDIS = ("127.0.0.1", 6379)


def _write_usecase(root: Path) -> Path:
    declaration = shops.declaration(NAME)
    declaration["serving"]["max_batch"] = MAX_BATCH
    declaration["training"] = {
        "min_train_rows": 10,
        "split": {"validation_partitions": 1, "test_partitions": 1},
        "model": {"params": {"max_iter": 20}},
    }
    folder = root / NAME
    folder.mkdir(parents=True)
    (folder / "usecase.yaml").write_text(yaml.safe_dump(declaration, sort_keys=False))
    (folder / "transforms.py").write_text(shops.TRANSFORMS)
    sys.modules.pop(f"mlops_usecase_{NAME}_transforms", None)
    return root


@pytest.fixture(scope="module")
def usecases(tmp_path_factory) -> Iterator[Path]:
    root = _write_usecase(tmp_path_factory.mktemp("fault-usecases"))
    # Feast's on-demand view finds the use case's transforms through the environment.
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("MLOPS_USECASES_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def model(usecases, tmp_path_factory) -> LoadedModel:
    spec = Settings(usecases_dir=usecases, usecase=NAME).spec
    days = pd.concat([shops.day_frame(day, SHOPS) for day in DAYS], ignore_index=True)
    frame = pd.DataFrame(add_on_demand_features(spec, days.to_dict("list")))
    return served_model(spec, train_model(spec, frame), "1", loaded_at="2025-06-08T00:00:00+00:00")


def _with_features(settings: Settings) -> Settings:
    """``settings`` with the last day in the lake, definitions registered and it online."""
    shops.write_lake(settings, DAYS[-1:], SHOPS)
    register_definitions(settings)
    materialize_interval(settings, *days_interval(DAYS[-1:]))
    return settings


@pytest.fixture(scope="module")
def embedded(usecases, tmp_path_factory) -> Settings:
    home = tmp_path_factory.mktemp("fault-embedded") / "home"
    return _with_features(Settings(usecases_dir=usecases, usecase=NAME, home=home))


@contextlib.contextmanager
def serving(settings: Settings, model: LoadedModel) -> Generator[str]:
    """The app under uvicorn on a free port (in a thread of this process); its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, StaticWatcher(model)), host="127.0.0.1", port=port, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def server(embedded, model) -> Iterator[str]:
    with serving(embedded, model) as base:
        yield base


def _log_lines(settings: Settings) -> list[str]:
    return [
        line
        for path in sorted(settings.predictions_dir.glob("date=*/*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _instance(**changes: Any) -> dict[str, Any]:
    frame = shops.day_frame(DAYS[-1], 1)
    row = {c: frame[c].iloc[0] for c in ("region", "size_m2", "visits", "price", "promo")}
    plain = {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
    return {**plain, "temperature": None, **changes}


def _raw(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


HOSTILE = {
    "NaN id": '{"entities": {"shop_id": [1, NaN]}}',
    "Infinity id": '{"entities": {"shop_id": [Infinity]}}',
    "-Infinity id": '{"entities": {"shop_id": [-Infinity]}}',
    "1e309 id": '{"entities": {"shop_id": [1e309]}}',
    "id at 2^63": json.dumps({"entities": {"shop_id": [2**63]}}),
    "id below -2^63": json.dumps({"entities": {"shop_id": [-(2**63) - 1]}}),
    "20-digit id": json.dumps({"entities": {"shop_id": [10**20]}}),
    "5000-digit id": '{"entities": {"shop_id": [' + "9" * 5000 + "]}}",
    "NaN feature": json.dumps({"instances": [_instance(price=float("nan"))]}),
    "1e309 feature": json.dumps({"instances": [_instance(price="P")]}).replace('"P"', "1e309"),
    "int feature at 2^63": json.dumps({"instances": [_instance(visits=2**63)]}),
    "lone surrogate value": json.dumps({"instances": [_instance(region="\ud800")]}),
    "lone surrogate key": json.dumps({"instances": [{**_instance(), "\udfff": 1}]}),
    "NaN in an unknown field": '{"entities": {"shop_id": [1]}, "extra": NaN}',
    "nested too deep": "[" * 50_000 + "]" * 50_000,
    "not UTF-8": b'{"instances": [{"region": "\xff\xfe"}]}',
    "huge echo": json.dumps({"instances": [{"region": "n" * 100_000}]}),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_invalid_payloads_get_a_short_422_and_change_nothing(server, embedded, body):
    before = _log_lines(embedded)
    response = httpx.post(
        f"{server}/predict", content=_raw(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text[:500]
    assert len(response.content) < SHORT_ANSWER
    detail = response.json()["detail"]
    assert detail and all(error["msg"] for error in detail)
    assert _log_lines(embedded) == before


def test_the_int64_edge_is_a_valid_unknown_id_and_the_log_stays_whole(server, embedded):
    largest = 2**63 - 1
    response = httpx.post(f"{server}/predict", json={"entities": {"shop_id": [1, largest]}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["shop_id"] for p in body["predictions"]] == [1]
    assert [u["shop_id"] for u in body["unknown"]] == [largest]
    records = [json.loads(line) for line in _log_lines(embedded)]  # no torn line
    assert records[-1]["shop_id"] == 1 and records[-1]["source"] == "online"


def _raw_request(base: str, head: str, body_chunks: Iterable[bytes] = ()) -> bytes:
    """Send ``head`` then ``body_chunks`` over a socket and return what the server answers
    (the server may stop reading, and close, before the body is all sent)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head.encode())
        with contextlib.suppress(OSError):
            for chunk in body_chunks:
                connection.sendall(chunk)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := connection.recv(65536):
                answer += chunk
        return answer


def test_a_body_over_the_limit_is_refused_unread(server, embedded):
    limit = body_limit(embedded)
    declared = 54_000_000
    started = time.monotonic()
    # Headers only: a server that read the body before refusing it would wait for it here.
    answer = _raw_request(
        server,
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 2
    assert f"larger than {limit} bytes".encode() in answer

    # A streamed body has no length to check: refused at the first chunk past the limit.
    chunk = b"[" + b"1," * 32_767 + b"1"  # 64 KiB
    chunks = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(declared // 65536))
    sent = time.monotonic()
    answer = _raw_request(
        server,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        chunks,
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - sent < 5
    health = httpx.get(f"{server}/health", timeout=2)
    assert health.status_code == 200


def test_the_default_limit_admits_the_declared_max_batch(server, embedded):
    assert body_limit(embedded) > 0 and embedded.serving_max_body_bytes == 0
    instances = [_instance(region="s" * 200) | {"shop_id": i + 1} for i in range(MAX_BATCH)]
    body = json.dumps({"instances": instances}, indent=4)
    assert len(body) < body_limit(embedded)
    response = httpx.post(f"{server}/predict", content=body)
    assert response.status_code == 422  # region "sss..." is outside the declared values
    instances = [_instance() | {"shop_id": i + 1} for i in range(MAX_BATCH)]
    assert httpx.post(f"{server}/predict", json={"instances": instances}).status_code == 200


def test_the_limit_setting_applies(embedded, model):
    small = embedded.replace(serving_max_body_bytes=100)
    with TestClient(create_app(small, StaticWatcher(model))) as client:
        assert client.post("/predict", json={"entities": {"shop_id": [1]}}).status_code == 200
        big = client.post("/predict", json={"entities": {"shop_id": list(range(1, MAX_BATCH))}})
        assert big.status_code == 413
        assert "larger than 100 bytes" in big.json()["detail"]


class TcpProxy:
    """Forwards a local port to ``target`` until stopped; ``stop`` closes the listener and
    every connection, as a store going away does; ``start`` again listens on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def redis_behind_proxy(usecases, tmp_path) -> Iterator[tuple[Settings, TcpProxy]]:
    import redis

    client = redis.Redis(*REDIS, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        skip_or_fail(f"Redis unreachable at {REDIS}: {error}")
    proxy = TcpProxy(REDIS)
    proxy.start()
    settings = Settings(
        usecases_dir=usecases,
        usecase=NAME,
        home=tmp_path / "home",
        profile="production",
        feast_project_prefix=f"faults_{uuid.uuid4().hex[:8]}_",
        feast_registry_url=f"sqlite:///{tmp_path / 'registry.db'}",
        redis_connection=f"127.0.0.1:{proxy.port}",
    )
    try:
        yield _with_features(settings), proxy
    finally:
        proxy.stop()
        for key in client.scan_iter(match=f"*{settings.feast_project}*"):
            client.delete(key)
        client.close()


def test_an_unreachable_online_store_is_a_prompt_503_and_not_ready(redis_behind_proxy, model):
    settings, proxy = redis_behind_proxy
    lookup = {"entities": {"shop_id": [1, 2]}}
    with serving(settings, model) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/ready").status_code == 200
        assert len(client.post("/predict", json=lookup).json()["predictions"]) == 2
        served = _log_lines(settings)

        proxy.stop()
        started = time.monotonic()
        down = client.post("/predict", json=lookup)
        assert time.monotonic() - started < online.READ_DEADLINE_S + 1
        assert down.status_code == 503 and "online store unavailable" in down.json()["detail"]
        started = time.monotonic()
        ready = client.get("/ready")
        assert time.monotonic() - started < 0.5  # the verdict is cached
        assert ready.status_code == 503 and "online store" in ready.json()["reason"]
        assert client.get("/health").status_code == 200
        inline = client.post("/predict", json={"instances": [_instance()]})
        assert inline.status_code == 200  # features given inline need no store
        assert len(_log_lines(settings)) == len(served) + 1

        proxy.start()
        deadline = time.monotonic() + 20
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "never ready again after the store came back"
            time.sleep(0.5)
        assert client.post("/predict", json=lookup).status_code == 200
    records = [json.loads(line) for line in _log_lines(settings)]
    assert [r["source"] for r in records] == ["online"] * 2 + ["inline"] + ["online"] * 2


# The fuzz: bodies drawn from the server's own OpenAPI (valid, near-valid), raw JSON of any
# shape, and hostile literals spliced in.


def _from_schema(schema: dict[str, Any], definitions: dict[str, Any]) -> st.SearchStrategy:
    if "$ref" in schema:
        return st.deferred(
            lambda: _from_schema(definitions[schema["$ref"].rsplit("/", 1)[1]], definitions)
        )
    if "anyOf" in schema:
        return st.one_of([_from_schema(s, definitions) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = {
            name: _from_schema(s, definitions) for name, s in schema.get("properties", {}).items()
        }
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {n: s for n, s in properties.items() if n in required},
            optional={n: s for n, s in properties.items() if n not in required},
        )
    if kind == "array":
        return st.lists(
            _from_schema(schema.get("items", {}), definitions),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 3), 3),
        )
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum")) | st.integers()
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum")) | st.floats()
    if kind == "string":
        return st.text(max_size=10)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return JSON_VALUES


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def fuzz_client(embedded, model) -> Iterator[TestClient]:
    with TestClient(create_app(embedded, StaticWatcher(model)), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def operations(fuzz_client) -> list[tuple[str, str, st.SearchStrategy]]:
    """(method, path, body strategy) of every operation in the server's OpenAPI."""
    openapi = fuzz_client.get("/openapi.json").json()
    definitions = openapi["components"]["schemas"]
    found = []
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            body = _from_schema(schema, definitions) if schema else st.none()
            found.append((method, path, body | JSON_VALUES))
    assert {path for _, path, _ in found} >= {"/predict", "/ready", "/health", "/metrics"}
    return found


HOSTILE_LITERALS = st.sampled_from(["NaN", "-Infinity", "1e309", str(2**63), '"\\ud800"'])


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_the_whole_openapi_never_answers_a_5xx(fuzz_client, operations, data):
    method, path, bodies = data.draw(st.sampled_from(operations))
    text = json.dumps(data.draw(bodies))
    if data.draw(st.booleans()):  # splice a hostile literal in place of some value
        literal = data.draw(HOSTILE_LITERALS)
        text = text.replace("null", literal, 1) if "null" in text else literal
    response = fuzz_client.request(
        method, path, content=text, headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, (method, path, text[:300], response.text[:300])
