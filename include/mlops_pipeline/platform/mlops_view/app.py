"""The view's FastAPI app and its routes, and what the Airflow plugin mounts: the app built on
its first request, and the UI's navigation entry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from mlops_pipeline.config import Settings, get_settings
from mlops_pipeline.platform.mlops_view.charts import plotly_js, plotly_js_name
from mlops_pipeline.platform.mlops_view.documents import render_document
from mlops_pipeline.platform.mlops_view.files import ModelCards, resolve_report
from mlops_pipeline.platform.mlops_view.page import render_page
from mlops_pipeline.platform.mlops_view.picker import render_picker
from mlops_pipeline.platform.mlops_view.state import (
    DEFAULT_NIGHTS,
    usecase_settings,
    usecases,
    view_state,
)

URL_PREFIX = "/mlops"
# The plotly.js file name carries its version: a new plotly is a new URL, so a year is safe.
STATIC_CACHE = "private, max-age=31536000, immutable"


def external_view() -> dict[str, Any]:
    """The UI's navigation entry: Airflow renders ``href`` in its page at ``/plugin/mlops``."""
    return {
        "name": "MLOps",
        "href": URL_PREFIX.lstrip("/") + "/",
        "url_route": "mlops",
        "destination": "nav",
        "nav_top_level": True,
    }


def create_app(settings_factory: Callable[[], Settings] = get_settings) -> Any:
    """The FastAPI app, every route behind Airflow's login (needs an initialized auth
    manager: the api-server's, or ``airflow.api_fastapi.app.create_app()``'s)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import FileResponse, HTMLResponse, Response
    from starlette.middleware.gzip import GZipMiddleware

    cards = ModelCards()
    app = FastAPI(
        title="MLOps view",
        dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
        docs_url=None,
        redoc_url=None,
    )
    # plotly.js is megabytes of text; compressed it is a third of that.
    app.add_middleware(GZipMiddleware, minimum_size=1024)

    def not_found(exc: FileNotFoundError) -> HTTPException:
        return HTTPException(status_code=404, detail=f"not found: {exc}")

    def of(usecase: str) -> Settings:
        try:
            return usecase_settings(settings_factory(), usecase)
        except FileNotFoundError as exc:
            raise not_found(exc) from exc

    @app.get("/", response_class=HTMLResponse)
    def picker() -> str:
        return render_picker(usecases(settings_factory()))

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name != plotly_js_name():
            raise HTTPException(status_code=404, detail=f"not found: {name}")
        return Response(
            plotly_js()[0],
            media_type="text/javascript",
            headers={"Cache-Control": STATIC_CACHE},
        )

    @app.get("/api/usecases")
    def usecases_api() -> list[dict[str, Any]]:
        return usecases(settings_factory())

    @app.get("/api/{usecase}/status")
    def status(usecase: str, nights: int = Query(DEFAULT_NIGHTS, ge=1, le=366)) -> dict[str, Any]:
        return view_state(of(usecase), nights)

    @app.get("/{usecase}/", response_class=HTMLResponse)
    def page(usecase: str, nights: int = Query(DEFAULT_NIGHTS, ge=1, le=366)) -> str:
        return render_page(view_state(of(usecase), nights))

    @app.get("/{usecase}/reports/{relative:path}")
    def report(usecase: str, relative: str) -> FileResponse:
        try:
            return FileResponse(resolve_report(of(usecase), relative))
        except FileNotFoundError as exc:
            raise not_found(exc) from exc

    @app.get("/{usecase}/documents/{relative:path}", response_class=HTMLResponse)
    def document(usecase: str, relative: str) -> str:
        try:
            return render_document(resolve_report(of(usecase), relative), relative)
        except FileNotFoundError as exc:
            raise not_found(exc) from exc

    @app.get("/{usecase}/model-card/{version}/{name}")
    def model_card(usecase: str, version: str, name: str) -> FileResponse:
        try:
            return FileResponse(cards.file(of(usecase), version, name))
        except FileNotFoundError as exc:
            raise not_found(exc) from exc

    return app


class LazyApp:
    """An ASGI app that builds the real one on its first request, so loading the plugin in a
    scheduler or task process costs nothing."""

    def __init__(self, factory: Callable[[], Any] = create_app) -> None:
        self._factory = factory
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
        return self._app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        await self.app(scope, receive, send)
