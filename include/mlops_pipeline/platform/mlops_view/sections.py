"""The page's newer sections: the charts, the scored partitions and the live shadow."""

from __future__ import annotations

from typing import Any

from mlops_pipeline.platform.mlops_view import charts
from mlops_pipeline.platform.mlops_view.markup import badge, escape, link, number, table

# Shown under the metrics chart and the decisions: the same versions carry two sets of figures.
WHY_FIGURES_DIFFER = (
    "Training reports each version's metrics on its own test partitions; the gate re-scores "
    "the challenger and the champion on the same holdout (the challenger's test partitions), "
    "so a champion's gate figures differ from those it was trained with."
)


def charts_section(state: dict[str, Any]) -> str:
    usecase, models = state["usecase"], state["models"]
    history = (state.get("monitoring") or {}).get("history") or []
    decisions = state["decisions"]
    parts = ["<section id='charts'><h2>Charts</h2><div class='charts'>"]
    if history:
        parts.append(charts.chart("chart-drift-share", charts.drift_share_figure(history)))
        if any(n["columns"] for n in history):
            parts.append(charts.chart("chart-column-scores", charts.column_scores_figure(history)))
    else:
        parts.append("<p class='empty'>No drift night recorded yet.</p>")
    if models["versions"]:
        metrics = [m["metric"] for m in usecase["metrics"]]
        parts.append(
            charts.chart(
                "chart-metrics", charts.metrics_figure(models["versions"], decisions, metrics)
            )
        )
    else:
        parts.append("<p class='empty'>No registered version yet.</p>")
    gated = next((d for d in decisions if d.get("gates")), None)
    if gated:
        parts.append(charts.chart("chart-gates", charts.gates_figure(gated), wide=True))
    parts.append(f"</div><p class='note'>{escape(WHY_FIGURES_DIFFER)}</p></section>")
    return "".join(parts)


def _score_cell(scores: dict[str, Any] | None, key: str) -> str:
    return number((scores or {}).get(key))


def scoring_section(state: dict[str, Any]) -> str:
    partitions = state["scoring"]["partitions"]
    classifier = "positive_share" in ((partitions[0].get("scores") or {}) if partitions else {})
    rows = [
        [
            escape(p["date"]),
            number(p["rows"]),
            escape(", ".join(f"v{v}" for v in p["model_versions"]) or "–"),
            *(_score_cell(p.get("scores"), k) for k in ("mean", "p10", "p50", "p90")),
            *([_score_cell(p.get("scores"), "positive_share")] if classifier else []),
            escape(", ".join(p["airflow_run_ids"])),
        ]
        for p in partitions
    ]
    headers = ["partition", "rows", "model", "mean", "p10", "p50", "p90"]
    body = table(
        [*headers, *(["positive share"] if classifier else []), "Airflow run"],
        rows,
        "Not scored yet: the batch scoring DAG writes a predictions partition per scored "
        "partition.",
    )
    figure = charts.chart("chart-scores", charts.scores_figure(partitions)) if partitions else ""
    return f"<section id='scoring'><h2>Last scored partitions</h2>{body}{figure}</section>"


def shadow_section(state: dict[str, Any]) -> str:
    shadow = state["shadow"]
    head = "<section id='shadow'><h2>Live shadow of the challenger</h2>"
    summary = shadow.get("summary")
    if shadow.get("challenger") is None:
        return head + "<p class='empty'>No challenger: nothing to shadow.</p></section>"
    intro = (
        f"<p>Challenger v{escape(shadow['challenger'])} beside champion "
        f"{('v' + escape(shadow['champion'])) if shadow.get('champion') else '–'}, on the "
        "requests the model server answered.</p>"
    )
    if not summary or not (summary["requests"] or summary["errors"]):
        return (
            head
            + intro
            + "<p class='empty'>No shadow traffic: the model server has not shadowed this "
            "challenger yet (it does with <code>MLOPS_SERVING_SHADOW=true</code>).</p></section>"
        )
    errors = summary["errors"]
    rows = [
        [
            number(summary["requests"]),
            number(summary["rows"]),
            badge(str(errors), "fail") if errors else badge("0", "pass"),
            number(summary["p99_ms"], 2),
            number(summary["agreement"]),
        ]
    ]
    return (
        head
        + intro
        + table(["requests", "rows", "errors", "p99 (ms)", "decision agreement"], rows, "")
        + "</section>"
    )


def lineage_links(item: dict[str, Any]) -> str:
    """The MLflow and Airflow links of a version or a decision, those it has."""
    found = [
        link(item.get("mlflow_version_url"), "MLflow version", "_blank"),
        link(item.get("mlflow_run_url"), "MLflow run", "_blank"),
        link(item.get("airflow_url"), "Airflow run", "_top"),
    ]
    return " · ".join(f for f in found if f != "–") or "–"
