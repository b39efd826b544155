"""The FastAPI app of one use case: /predict, /health, /ready, /metrics, /model.

Request and response bodies are generated from the use case's declaration (``schemas``), so
``/docs`` shows its field names. Features come from the Feast online store through the use
case's feature service (``{"entities": {"<key>": [ids]}}``) or inline (``{"instances": [...]}``);
inline requests get their on-demand features from the use case's own functions, the same ones
the Feast on-demand views run.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations, and the
# request model is generated per use case inside ``create_app``.

import time
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.failures import UserCodeError
from mlops_pipeline.features.on_demand import add_on_demand_features
from mlops_pipeline.serving.champion import ChampionWatcher, LoadedModel
from mlops_pipeline.serving.limits import BodyLimit, body_limit
from mlops_pipeline.serving.metrics import Metrics
from mlops_pipeline.serving.online import OnlineStore, OnlineStoreUnavailable
from mlops_pipeline.serving.payloads import (
    InvalidRequest,
    StrictJSONRoute,
    answer_invalid_request,
)
from mlops_pipeline.serving.prediction_log import PredictionLog
from mlops_pipeline.serving.schemas import UNKNOWN_ENTITY, schemas_for
from mlops_pipeline.serving.shadow import LiveShadow
from mlops_pipeline.usecases.spec import UseCaseSpec


def create_app(
    settings: Settings,
    watcher: ChampionWatcher | None = None,
    shadow_watcher: ChampionWatcher | None = None,
) -> FastAPI:
    """The app of ``settings.spec``'s model server; ``watcher`` (of the champion) and
    ``shadow_watcher`` (of the challenger, with ``serving_shadow``) default to the registry's."""
    spec = settings.spec
    schemas = schemas_for(spec)
    key = spec.entity.key
    score_field, decision_field = spec.serving.score_field, spec.serving.decision_field
    unknown_error = UNKNOWN_ENTITY.format(entity=spec.entity.name)
    watcher = watcher or ChampionWatcher(settings)
    metrics = Metrics(spec.model_name, classifier=spec.is_classifier)
    log = PredictionLog(settings.predictions_dir)

    def record_swap(replaced: LoadedModel | None, loaded: LoadedModel) -> None:
        metrics.serving(loaded.alias, loaded.version, replaced.version if replaced else None)

    watcher.on_swap.append(record_swap)
    if watcher.current is not None:
        record_swap(None, watcher.current)
    store = OnlineStore(settings)
    shadow = LiveShadow(settings, metrics, shadow_watcher) if settings.serving_shadow else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        watcher.start()
        if shadow is not None:
            shadow.start()
        store.open()  # a store that cannot be opened fails lookups and /ready, not inline
        yield
        watcher.stop()
        if shadow is not None:
            await shadow.stop()  # its process scores what it was handed, then exits
        store.close()
        log.close()

    app = FastAPI(
        title=f"{spec.model_name} model server",
        description=spec.description,
        lifespan=lifespan,
    )
    app.router.route_class = StrictJSONRoute
    app.add_exception_handler(RequestValidationError, answer_invalid_request)
    app.add_middleware(BodyLimit, max_bytes=body_limit(settings))

    def _model() -> LoadedModel:
        model = watcher.current
        if model is None:
            raise HTTPException(503, f"no model loaded yet: {watcher.last_error}")
        return model

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(response: Response) -> dict[str, Any]:
        if watcher.current is None:
            response.status_code = 503
            return {"ready": False, "reason": watcher.last_error}
        problem = await store.problem()
        if problem is not None:
            response.status_code = 503
            return {"ready": False, "reason": problem}
        return {"ready": True, "version": watcher.current.version}

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        model = _model()
        return {
            "name": model.name,
            "version": model.version,
            "alias": model.alias,
            "threshold": model.threshold,
            "loaded_at": model.loaded_at,
            "run_id": model.run_id,
            "shadow": _shadow_info(shadow),
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def online_columns(
        ids: list[int],
    ) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
        """The online store's features of ``ids``; an entity it has never seen comes back
        with every feature None and is answered as unknown."""
        try:
            columns = await store.read(ids)
        except OnlineStoreUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        columns[key] = list(ids)
        known = [
            any(v is not None for v in row)
            for row in zip(*(columns[n] for n in spec.feature_columns), strict=True)
        ]
        unknown = [
            {key: int(i), "error": unknown_error} for i, k in zip(ids, known, strict=True) if not k
        ]
        if unknown:
            columns = {
                n: [v for v, k in zip(vs, known, strict=True) if k] for n, vs in columns.items()
            }
        return columns, unknown

    def inline_columns(instances: list[Any]) -> dict[str, list[Any]]:
        rows = [i.model_dump(by_alias=True) for i in instances]
        return {name: [r[name] for r in rows] for name in (key, *spec.feature_columns)}

    # Deliberately `async def`: a request is ~1 ms of CPU under the GIL (an online-store read
    # and a compiled model), so a thread-pool hop per request costs more than it could overlap.
    # Only the online read leaves the event loop, for its deadline (``online``).
    async def predict(
        body: schemas.request,  # type: ignore[name-defined]
    ) -> dict[str, Any]:
        started = time.perf_counter()
        model = _model()
        unknown: list[dict[str, Any]] = []
        if body.entities is not None:
            columns, unknown = await online_columns(body.entities.model_dump(by_alias=True)[key])
            source = "online"
        else:
            columns, source = inline_columns(body.instances), "inline"
        predictions: list[dict[str, Any]] = []
        if columns[key]:
            if any(name not in columns for name in spec.on_demand_features):
                try:
                    columns = add_on_demand_features(spec, columns)
                except UserCodeError as exc:
                    raise HTTPException(500, str(exc)) from exc
            scores = model.scorer.score(columns)
            decisions = None if model.threshold is None else scores >= model.threshold
            ids = [None if i is None else int(i) for i in columns[key]]
            predictions = [
                {key: i, score_field: float(s)} for i, s in zip(ids, scores.tolist(), strict=True)
            ]
            if decisions is not None:
                for prediction, decision in zip(predictions, decisions.tolist(), strict=True):
                    prediction[decision_field] = decision  # type: ignore[index]
            metrics.predicted(scores, decisions)
            log.append(_log_records(spec, columns, ids, scores, decisions, model.version, source))
            if shadow is not None:
                # Handed to the shadow process without blocking: the answer never waits for it.
                shadow.enqueue(columns, ids, model, scores, source)
        metrics.predict_latency.observe(time.perf_counter() - started)
        return {
            "model_name": model.name,
            "model_version": model.version,
            "threshold": model.threshold,
            "predictions": predictions,
            "unknown": unknown,
        }

    app.post(
        "/predict",
        response_model=schemas.response,
        responses={
            413: {"description": "The body is over `MLOPS_SERVING_MAX_BODY_BYTES`."},
            422: {"model": InvalidRequest, "description": "Not strict JSON or not the schema."},
            503: {"description": "No model loaded yet, or the online store unavailable."},
        },
    )(predict)
    app.state.watcher = watcher
    app.state.shadow = shadow
    return app


def _log_records(
    spec: UseCaseSpec,
    columns: dict[str, list[Any]],
    ids: list[int | None],
    scores: np.ndarray,
    decisions: np.ndarray | None,
    version: str,
    source: str,
) -> list[dict[str, Any]]:
    """One prediction-log record per row, with generic keys (drift monitoring reads them)."""
    features = [[_plain(v) for v in columns[n]] for n in spec.model_features]
    records = []
    for row, (entity, score) in enumerate(zip(ids, scores.tolist(), strict=True)):
        record: dict[str, Any] = {spec.entity.key: entity, "score": score}
        if decisions is not None:
            record["decision"] = bool(decisions[row])
        record["model_version"] = version
        record["source"] = source
        record.update(
            {n: values[row] for n, values in zip(spec.model_features, features, strict=True)}
        )
        records.append(record)
    return records


def _shadow_info(shadow: LiveShadow | None) -> dict[str, Any] | None:
    """``/model``'s view of the live shadow: off (None), or the challenger it scores."""
    if shadow is None:
        return None
    # As the shadow process last reported: "starting" until it has loaded the challenger.
    return {"alias": registry.CHALLENGER, "version": shadow.version, "reason": shadow.reason}


def app_from_environment() -> FastAPI:
    """The app for one uvicorn worker process (``mlops-pipeline serve --workers N``)."""
    return create_app(get_settings())


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
