"""The MLOps view inside Airflow's UI: each model's state where the pipeline's state already is.

A FastAPI app that ``plugins/mlops_view_plugin.py`` mounts in Airflow's api-server under
``/mlops`` and links from the UI's navigation. It reads the same state as
``mlops-pipeline status`` (``status.platform_status``) and adds what a person needs beside it:
the decision records with every gate, links to the Evidently drift reports, the Data Docs and
the champion's model card. Every declared use case has its pages; names, metrics and labels
come from its declaration.

- ``GET /mlops/`` the use-case picker; ``GET /mlops/api/usecases`` the same as JSON.
- ``GET /mlops/<usecase>/`` a use case's page; ``GET /mlops/api/<usecase>/status`` as JSON.
- ``GET /mlops/<usecase>/reports/<path>`` files under ``MLOPS_HOME/reports`` (Data Docs, drift
  reports, decision records); nothing outside it.
- ``GET /mlops/<usecase>/model-card/<version>/<file>`` a version's model card (HTML, Markdown,
  SHAP plot) from its MLflow run.

Every route requires a logged-in Airflow user: Airflow's own ``requires_access_view``
dependency reads the JWT from the ``Authorization: Bearer`` header or the UI's cookie, so an
anonymous request gets 401 (403 for an invalid token). An undeclared use case is a 404.

Importing this module is cheap (every Airflow process loads plugins, task runners included):
FastAPI and Airflow's API security are imported when the api-server first routes a request.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings, get_settings

URL_PREFIX = "/mlops"
DEFAULT_NIGHTS = 30
MODEL_CARD_DIR = "model_card"
_CARD_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def external_view() -> dict[str, Any]:
    """The UI's navigation entry: Airflow renders ``href`` in its page at ``/plugin/mlops``."""
    return {
        "name": "MLOps",
        "href": URL_PREFIX.lstrip("/") + "/",
        "url_route": "mlops",
        "destination": "nav",
        "nav_top_level": True,
    }


# ---- state ---------------------------------------------------------------------------------


def report_link(settings: Settings, path: Path) -> str | None:
    """The view's URL of a file under ``reports/`` (relative to the page), if it exists."""
    try:
        relative = path.resolve().relative_to(settings.reports_dir.resolve())
    except ValueError:
        return None
    return f"reports/{relative.as_posix()}" if path.is_file() else None


def _decisions(settings: Settings, limit: int) -> list[dict[str, Any]]:
    from mlops_pipeline.deployment.promotion import decision_records

    rows = []
    for path, record in decision_records(settings, limit):
        gates = (record.get("evaluation") or {}).get("gates") or {}
        rows.append(
            {
                **{
                    k: record.get(k)
                    for k in (
                        "decided_at",
                        "action",
                        "outcome",
                        "version",
                        "decided_by",
                        "reasons",
                        "aliases",
                    )
                },
                "gates_passed": gates.get("passed"),
                "gates": gates.get("checks") or [],
                "record": report_link(settings, path.with_suffix(".md")),
            }
        )
    return rows


def view_state(
    settings: Settings, nights: int = DEFAULT_NIGHTS, decisions: int = 5
) -> dict[str, Any]:
    """``platform_status`` (``nights`` rows of partitions and drift nights) plus the decision
    records in full and the links the page shows."""
    from mlops_pipeline.monitoring.nightly import REPORT, night_dir
    from mlops_pipeline.platform.status import platform_status

    state = platform_status(settings, nights)
    state["generated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    ingestion = state["ingestion"]
    ingestion["data_docs_url"] = report_link(settings, Path(ingestion["data_docs"]))
    monitoring = state.setdefault("monitoring", {})
    for night in monitoring.get("nights", []):
        day = dt.date.fromisoformat(night["night"])
        night["report_url"] = report_link(settings, night_dir(settings, day) / REPORT)
    models = state["models"]
    champion = models["aliases"].get("champion")
    models["champion_card_url"] = (
        f"model-card/{champion}/model_card.html" if champion is not None else None
    )
    state["decisions"] = _decisions(settings, decisions)
    return state


def resolve_report(settings: Settings, relative: str) -> Path:
    """``relative`` under ``MLOPS_HOME/reports``, or ``FileNotFoundError``: absolute paths,
    ``..`` and symlinks leading outside are refused alike."""
    root = settings.reports_dir.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        raise FileNotFoundError(relative)
    return candidate


class ModelCards:
    """Model card files of registered versions, fetched once per run from MLflow."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._cache = cache_dir or Path(tempfile.mkdtemp(prefix="mlops-view-cards-"))
        self._lock = threading.Lock()

    def file(self, settings: Settings, version: str, name: str) -> Path:
        from mlflow.exceptions import MlflowException

        from mlops_pipeline.deployment import registry

        if not version.isdigit() or not _CARD_FILE.match(name):
            raise FileNotFoundError(name)
        tracking = registry.client(settings)
        try:
            run_id = tracking.get_model_version(settings.spec.model_name, version).run_id
        except MlflowException as exc:
            raise FileNotFoundError(version) from exc
        folder = self._cache / run_id
        with self._lock:
            if not folder.exists():
                staging = Path(tempfile.mkdtemp(dir=self._cache))
                try:
                    tracking.download_artifacts(run_id, MODEL_CARD_DIR, str(staging))
                except MlflowException as exc:
                    raise FileNotFoundError(version) from exc
                (staging / MODEL_CARD_DIR).rename(folder)
        path = (folder / name).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise FileNotFoundError(name)
        return path


# ---- page ----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return _e(value if value is not None else "–")
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _link(url: str | None, text: str) -> str:
    return f"<a href='{_e(url)}'>{_e(text)}</a>" if url else "–"


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f"<p class='empty'>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _badge(text: str, kind: str) -> str:
    return f"<span class='badge {kind}'>{_e(text)}</span>"


def _created(value: Any) -> str:
    if not isinstance(value, int | float):
        return _e(value)
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _models_section(models: dict[str, Any], usecase: dict[str, Any]) -> str:
    from mlops_pipeline.usecases.spec import Task

    metrics = [m["metric"] for m in usecase["metrics"]]
    classifier = Task(usecase["task"]) is Task.BINARY_CLASSIFICATION
    rows = [
        [
            f"v{_e(v['version'])}",
            " ".join(_badge(a, a) for a in v["aliases"]),
            *(_num((v.get("metrics") or {}).get(m)) for m in metrics),
            *([_num(v.get("threshold"))] if classifier else []),
            _e(v.get("data_window")),
            _e(v.get("trigger_reason")),
            _created(v.get("created")),
        ]
        for v in models["versions"]
    ]
    aliases = ", ".join(
        f"{_e(alias)}: {('v' + _e(version)) if version else '–'}"
        for alias, version in models["aliases"].items()
    )
    return (
        f"<section id='models'><h2>Model {_e(models['registered_model'])}</h2>"
        f"<p>Aliases: {aliases}</p>"
        + _table(
            [
                "version",
                "aliases",
                *(f"test {m}" for m in metrics),
                *(["threshold"] if classifier else []),
                "data window",
                "reason",
                "created (UTC)",
            ],
            rows,
            "No registered version yet: run the use case's training DAG.",
        )
        + "</section>"
    )


def _decisions_section(decisions: list[dict[str, Any]]) -> str:
    parts = ["<section id='decisions'><h2>Latest decisions</h2>"]
    if not decisions:
        parts.append("<p class='empty'>No deployment decision yet.</p>")
    for record in decisions:
        outcome = record.get("outcome") or ""
        kind = "pass" if outcome.startswith("promoted") or outcome == "rolled back" else "fail"
        if outcome == "awaiting decision":
            kind = "wait"
        parts.append(
            "<article class='decision'>"
            f"<h3>{_e(record.get('action'))} v{_e(record.get('version'))} "
            f"{_badge(outcome, kind)}</h3>"
            f"<p>{_e(record.get('decided_at'))} by {_e(record.get('decided_by'))} · "
            f"{_link(record.get('record'), 'decision record')}</p>"
        )
        if record.get("reasons"):
            parts.append(
                "<ul class='reasons'>"
                + "".join(f"<li>{_e(r)}</li>" for r in record["reasons"])
                + "</ul>"
            )
        gates = [
            [
                _e(check.get("name")),
                _num(check.get("value"), 4),
                _num(check.get("threshold"), 4),
                _badge("pass", "pass") if check.get("passed") else _badge("FAIL", "fail"),
                _e(check.get("detail")),
            ]
            for check in record.get("gates") or []
        ]
        if gates:
            parts.append(
                _table(["gate", "value", "threshold", "verdict", "detail"], gates, "no gates")
            )
        parts.append("</article>")
    parts.append("</section>")
    return "".join(parts)


def _drift_section(monitoring: dict[str, Any], usecase: dict[str, Any]) -> str:
    nights = monitoring.get("nights") or []
    rows = []
    for night in nights:
        share = night.get("drift_share")
        bar = (
            f"<span class='bar'><span style='width:{min(share, 1.0) * 100:.0f}%'></span></span> "
            if isinstance(share, int | float)
            else ""
        )
        retrain = night.get("retrain")
        rows.append(
            [
                _e(night.get("night")),
                _e(night.get("status")),
                ("v" + _e(night["champion_version"])) if night.get("champion_version") else "–",
                _num(night.get("rows")),
                bar + _num(share),
                _e(", ".join(night.get("drifted_columns") or [])),
                _num(night.get("performance_drop")),
                _badge("retrain", "fail") if retrain else _e("no" if retrain is False else "–"),
                _link(night.get("report_url"), "Evidently report"),
            ]
        )
    return (
        "<section id='drift'><h2>Drift, last nights</h2>"
        + _table(
            [
                "night",
                "status",
                "champion",
                "rows",
                "drift share",
                "drifted columns",
                f"{usecase['primary_metric']} drop",
                "retrain",
                "report",
            ],
            rows,
            "No drift night recorded yet (the drift check runs nightly once a champion serves).",
        )
        + "</section>"
    )


def _partition_rows(partitions: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            _e(p.get("date")),
            _e(p.get("status")),
            _num(p.get("rows_valid")),
            _num(p.get("rows_quarantined")),
            f"<code>{_e(p.get('validation_id'))}</code>",
            _e(p.get("message")),
        ]
        for p in partitions
    ]


def _ingestion_section(ingestion: dict[str, Any], features: dict[str, Any]) -> str:
    headers = ["date", "status", "rows valid", "quarantined", "validation id", "message"]
    materialized = [
        [_e(view), _e(r.get("from")), _e(r.get("to")), _num(r.get("intervals"))]
        for view, r in (features.get("materialized") or {}).items()
    ]
    return (
        "<section id='ingestion'><h2>Validation and quarantine</h2>"
        f"<p>{_link(ingestion.get('data_docs_url'), 'Great Expectations Data Docs')}</p>"
        "<h3>Validated partitions</h3>"
        + _table(headers, _partition_rows(ingestion["validated_partitions"]), "None yet.")
        + "<h3>Quarantined rows</h3>"
        + _table(headers, _partition_rows(ingestion["quarantined_partitions"]), "None.")
        + "<h3>Features online</h3>"
        + _table(["feature view", "from", "to", "intervals"], materialized, "Nothing yet.")
        + "</section>"
    )


def _card_section(models: dict[str, Any]) -> str:
    url = models.get("champion_card_url")
    if not url:
        return (
            "<section id='model-card'><h2>Champion's model card</h2>"
            "<p class='empty'>No champion yet.</p></section>"
        )
    return (
        "<section id='model-card'>"
        f"<h2>Champion's model card (v{_e(models['aliases']['champion'])})</h2>"
        f"<p>{_link(url, 'open the model card')}</p>"
        f"<iframe title='model card' src='{_e(url)}'></iframe></section>"
    )


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1rem 1.5rem;color:#1a202c;font-size:14px}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.4rem 0 .4rem;
border-bottom:1px solid #e2e8f0}h3{font-size:1rem;margin:.8rem 0 .3rem}
table{border-collapse:collapse;margin:.3rem 0}td,th{border:1px solid #e2e8f0;
padding:3px 8px;text-align:left;vertical-align:top}th{background:#f7fafc}
.badge{border-radius:4px;padding:1px 6px;font-size:12px;background:#edf2f7;margin-right:3px}
.champion,.pass{background:#c6f6d5}.challenger,.wait{background:#fefcbf}
.previous_champion{background:#e2e8f0}.fail{background:#fed7d7}
.bar{display:inline-block;width:60px;height:8px;background:#edf2f7;vertical-align:middle}
.bar span{display:block;height:8px;background:#dd6b20}
.empty{color:#718096}.muted{color:#718096}iframe{width:100%;height:40rem;
border:1px solid #e2e8f0}code{font-size:12px}nav a{margin-right:1rem}
"""


def _head(title: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
    )


def render_page(state: dict[str, Any]) -> str:
    """A use case's page (served at ``/mlops/<usecase>/``: links are relative to it)."""
    models, usecase = state["models"], state["usecase"]
    task = usecase["task"].replace("_", " ")
    return "".join(
        [
            _head(f"MLOps: {usecase['model_name']}"),
            "<p class='muted'><a href='../'>All use cases</a></p>",
            f"<h1>MLOps: {_e(models['registered_model'])}</h1>",
            f"<p>{_e(usecase['description'])}</p>",
            f"<p class='muted'>Use case <b>{_e(usecase['name'])}</b> · {_e(task)} of "
            f"<code>{_e(usecase['label'])}</code> per <code>{_e(usecase['entity_key'])}</code>"
            f" ({_e(usecase['cadence'])}) · primary metric {_e(usecase['primary_metric'])} · "
            f"owner {_e(usecase['owner'])}</p>",
            f"<p class='muted'>State of {_e(state['mlops_home'])} "
            f"({_e(state['profile'])} profile) at {_e(state['generated_at'])} · "
            f"<a href='../api/{_e(usecase['name'])}/status'>JSON</a></p>",
            "<nav><a href='#models'>Models</a><a href='#decisions'>Decisions</a>"
            "<a href='#drift'>Drift</a><a href='#ingestion'>Validation</a>"
            "<a href='#model-card'>Model card</a></nav>",
            _models_section(models, usecase),
            _decisions_section(state["decisions"]),
            _drift_section(state.get("monitoring") or {}, usecase),
            _ingestion_section(state["ingestion"], state["features"]),
            _card_section(models),
            "</body></html>",
        ]
    )


def usecases(settings: Settings) -> list[dict[str, Any]]:
    """Every declared use case with what the picker shows (read from the declarations only:
    the picker never waits for MLflow)."""
    from mlops_pipeline.platform.status import usecase_summary
    from mlops_pipeline.usecases.loader import declared_usecases

    return [
        {**usecase_summary(settings.for_usecase(name)), "url": f"{name}/"}
        for name in declared_usecases(settings.usecases_dir)
    ]


def render_picker(declared: list[dict[str, Any]]) -> str:
    """The view's home (``/mlops/``): one row per declared use case."""
    rows = [
        [
            _link(u["url"], u["name"]),
            _e(u["model_name"]),
            _e(u["task"].replace("_", " ")),
            f"<code>{_e(u['label'])}</code>",
            _e(u["primary_metric"]),
            _e(u["cadence"]),
            _e(u["owner"]),
            _e(u["description"]),
        ]
        for u in declared
    ]
    return "".join(
        [
            _head("MLOps"),
            "<h1>MLOps: use cases</h1>",
            "<p class='muted'>Every declared use case (<code>usecases/&lt;name&gt;/usecase.yaml"
            "</code>) · <a href='api/usecases'>JSON</a></p>",
            _table(
                [
                    "use case",
                    "model",
                    "task",
                    "label",
                    "primary metric",
                    "cadence",
                    "owner",
                    "description",
                ],
                rows,
                "No use case is declared.",
            ),
            "</body></html>",
        ]
    )


# ---- app -----------------------------------------------------------------------------------


def usecase_settings(settings: Settings, usecase: str) -> Settings:
    """The settings of a declared use case, or ``FileNotFoundError`` (a 404)."""
    from mlops_pipeline.usecases.loader import declared_usecases

    if usecase not in declared_usecases(settings.usecases_dir):
        raise FileNotFoundError(f"use case {usecase!r}")
    return settings.for_usecase(usecase)


def create_app(settings_factory: Callable[[], Settings] = get_settings) -> Any:
    """The FastAPI app, every route behind Airflow's login (needs an initialized auth
    manager: the api-server's, or ``airflow.api_fastapi.app.create_app()``'s)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import FileResponse, HTMLResponse

    cards = ModelCards()
    app = FastAPI(
        title="MLOps view",
        dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
        docs_url=None,
        redoc_url=None,
    )

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
