"""What the view shows, as JSON: a use case's state with its links, and the declared use cases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.platform.mlops_view.links import airflow_run_url, mlflow_run_url, mlflow_ui_url

DEFAULT_NIGHTS = 30


def report_link(settings: Settings, path: Path) -> str | None:
    """The view's URL of a file under ``reports/`` (relative to the page), if it exists."""
    try:
        relative = path.resolve().relative_to(settings.reports_dir.resolve())
    except ValueError:
        return None
    return f"reports/{relative.as_posix()}" if path.is_file() else None


def document_link(settings: Settings, path: Path) -> str | None:
    """The view's URL of a Markdown file under ``reports/`` rendered as HTML, if it exists."""
    raw = report_link(settings, path)
    return None if raw is None else "documents/" + raw.removeprefix("reports/")


def _scores(evaluation: dict[str, Any], role: str) -> dict[str, Any] | None:
    scored = evaluation.get(role)
    if not scored:
        return None
    return {"version": scored.get("version"), "metrics": scored.get("metrics") or {}}


def _decisions(settings: Settings, limit: int, mlflow_ui: str | None) -> list[dict[str, Any]]:
    from mlops_pipeline.deployment.decisions import decision_records

    rows = []
    for path, record in decision_records(settings, limit):
        evaluation = record.get("evaluation") or {}
        gates = evaluation.get("gates") or {}
        challenger_run = (evaluation.get("challenger") or {}).get("run_id")
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
                "record": document_link(settings, path.with_suffix(".md")),
                "record_markdown": report_link(settings, path.with_suffix(".md")),
                "holdout": (evaluation.get("holdout") or {}).get("window"),
                "challenger": _scores(evaluation, "challenger"),
                "champion": _scores(evaluation, "champion"),
                "airflow_url": airflow_run_url(record.get("airflow")),
                "mlflow_run_url": mlflow_run_url(mlflow_ui, challenger_run),
            }
        )
    return rows


def view_state(
    settings: Settings, nights: int = DEFAULT_NIGHTS, decisions: int = 5
) -> dict[str, Any]:
    """``platform_status`` (``nights`` rows of partitions and drift nights) plus the decision
    records in full, the drift nights' history, the scored partitions, the live shadow and
    the links the page shows."""
    from mlops_pipeline.monitoring.records import REPORT, night_dir
    from mlops_pipeline.platform.mlops_view.history import add_version_links, drift_history
    from mlops_pipeline.platform.mlops_view.scored import scored_partitions, shadow_state
    from mlops_pipeline.platform.status import platform_status
    from mlops_pipeline.usecases.vocabulary import partition_from_key

    mlflow_ui = mlflow_ui_url(settings)
    state = platform_status(settings, nights)
    state["links"] = {"mlflow_ui": mlflow_ui}
    state["generated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    ingestion = state["ingestion"]
    ingestion["data_docs_url"] = report_link(settings, Path(ingestion["data_docs"]))
    monitoring = state.setdefault("monitoring", {})
    for night in monitoring.get("nights", []):
        day = partition_from_key(night["night"])
        night["report_url"] = report_link(settings, night_dir(settings, day) / REPORT)
    monitoring["history"] = drift_history(settings, nights)
    models = state["models"]
    add_version_links(settings, models, mlflow_ui)
    champion = models["aliases"].get("champion")
    models["champion_card_url"] = (
        f"model-card/{champion}/model_card.html" if champion is not None else None
    )
    state["decisions"] = _decisions(settings, decisions, mlflow_ui)
    state["scoring"] = {"partitions": scored_partitions(settings)}
    state["shadow"] = shadow_state(settings, models)
    return state


def usecases(settings: Settings) -> list[dict[str, Any]]:
    """Every declared use case with what the picker shows (read from the declarations only:
    the picker never waits for MLflow)."""
    from mlops_pipeline.platform.status import usecase_summary
    from mlops_pipeline.usecases.loader import declared_usecases

    return [
        {**usecase_summary(settings.for_usecase(name)), "url": f"{name}/"}
        for name in declared_usecases(settings.usecases_dir)
    ]


def usecase_settings(settings: Settings, usecase: str) -> Settings:
    """The settings of a declared use case, or ``FileNotFoundError`` (a 404)."""
    from mlops_pipeline.usecases.loader import declared_usecases

    if usecase not in declared_usecases(settings.usecases_dir):
        raise FileNotFoundError(f"use case {usecase!r}")
    return settings.for_usecase(usecase)
