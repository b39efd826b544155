"""The FastAPI app: /predict, /health, /ready, /metrics, /model."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.data import contract
from mlops_pipeline.features.groups import ON_DEMAND_FEATURES
from mlops_pipeline.serving.champion import ChampionWatcher, LoadedModel
from mlops_pipeline.serving.metrics import Metrics
from mlops_pipeline.serving.prediction_log import PredictionLog
from mlops_pipeline.serving.schemas import (
    Prediction,
    PredictRequest,
    PredictResponse,
    UnknownCustomer,
)
from mlops_pipeline.training.model import MODEL_FEATURES


def create_app(settings: Settings, watcher: ChampionWatcher | None = None) -> FastAPI:
    watcher = watcher or ChampionWatcher(settings)
    metrics = Metrics()
    log = PredictionLog(settings.home / "predictions")

    def record_swap(replaced: LoadedModel | None, loaded: LoadedModel) -> None:
        metrics.serving(
            loaded.alias, loaded.name, loaded.version, replaced.version if replaced else None
        )

    watcher.on_swap.append(record_swap)
    if watcher.current is not None:
        record_swap(None, watcher.current)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from mlops_pipeline.features.access import OnlineFeatureReader
        from mlops_pipeline.features.store import open_store

        watcher.start()
        try:
            state["reader"] = OnlineFeatureReader(settings)
            state["ratios"] = (
                open_store(settings)
                .get_on_demand_feature_view("customer_ratios")
                .feature_transformation
            )
        except Exception as exc:  # serving inline features still works; lookups report it
            state["feature_error"] = f"{type(exc).__name__}: {exc}"
        yield
        watcher.stop()
        log.close()

    app = FastAPI(title="churn-classifier model server", lifespan=lifespan)

    def _model() -> LoadedModel:
        model = watcher.current
        if model is None:
            raise HTTPException(503, f"no model loaded yet: {watcher.last_error}")
        return model

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready(response: Response) -> dict[str, Any]:
        if watcher.current is None:
            response.status_code = 503
            return {"ready": False, "reason": watcher.last_error}
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
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # Deliberately `async def`: a request is ~1 ms of CPU under the GIL (an online-store read
    # and a compiled model), so a thread-pool hop per request costs more than it could overlap.
    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> PredictResponse:
        started = time.perf_counter()
        model = _model()
        unknown: list[UnknownCustomer] = []
        if body.customer_ids is not None:
            if "reader" not in state:
                raise HTTPException(503, f"feature store unavailable: {state.get('feature_error')}")
            columns = state["reader"].read(body.customer_ids)
            # A customer the online store has never seen comes back with every feature None.
            known = [v is not None for v in columns["monthly_charges"]]
            unknown = [
                UnknownCustomer(customer_id=int(i))
                for i, k in zip(columns[contract.ENTITY_KEY], known, strict=True)
                if not k
            ]
            if not all(known):
                columns = {
                    n: [v for v, k in zip(vs, known, strict=True) if k] for n, vs in columns.items()
                }
            source = "online"
        else:
            if "ratios" not in state:
                raise HTTPException(503, f"feature store unavailable: {state.get('feature_error')}")
            rows = [i.model_dump() for i in body.instances]
            columns = {name: [r[name] for r in rows] for name in rows[0]}
            # The on-demand view's own function: inline requests get the same ratios as
            # training and online lookups.
            derived = state["ratios"].transform(columns)
            columns.update({name: list(derived[name]) for name in ON_DEMAND_FEATURES})
            source = "inline"
        predictions: list[Prediction] = []
        if columns[contract.ENTITY_KEY]:
            probabilities = model.scorer.predict_proba(columns)
            decisions = probabilities >= model.threshold
            predictions = [
                Prediction(
                    customer_id=None if i is None else int(i),
                    churn_probability=float(p),
                    churn=bool(d),
                )
                for i, p, d in zip(
                    columns[contract.ENTITY_KEY], probabilities, decisions, strict=True
                )
            ]
            positives = int(decisions.sum())
            metrics.positive.inc(positives)
            metrics.negative.inc(len(predictions) - positives)
            features = {n: columns[n] for n in MODEL_FEATURES}
            log.append(
                [
                    {
                        "customer_id": p.customer_id,
                        "model_version": model.version,
                        "churn_probability": p.churn_probability,
                        "churn": p.churn,
                        "source": source,
                        **{n: _plain(values[row]) for n, values in features.items()},
                    }
                    for row, p in enumerate(predictions)
                ]
            )
        metrics.predict_latency.observe(time.perf_counter() - started)
        return PredictResponse(
            model_name=model.name,
            model_version=model.version,
            threshold=model.threshold,
            predictions=predictions,
            unknown=unknown,
        )

    app.state.watcher = watcher
    return app


def app_from_environment() -> FastAPI:
    """The app for one uvicorn worker process (``mlops-pipeline serve --workers N``)."""
    return create_app(get_settings())


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
