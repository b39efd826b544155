"""A use case's page (``/mlops/<usecase>/``): its models, decisions, drift nights, validation
and the champion's model card, one section each."""

from __future__ import annotations

from typing import Any

from mlops_pipeline.platform.mlops_view.charts import chart_scripts, plotly_js_name
from mlops_pipeline.platform.mlops_view.history import no_retrain_reason
from mlops_pipeline.platform.mlops_view.markup import (
    badge,
    created,
    document_head,
    escape,
    link,
    number,
    table,
)
from mlops_pipeline.platform.mlops_view.sections import (
    WHY_FIGURES_DIFFER,
    charts_section,
    lineage_links,
    scoring_section,
    shadow_section,
)


def _models_section(models: dict[str, Any], usecase: dict[str, Any]) -> str:
    from mlops_pipeline.usecases.spec import Task

    metrics = [m["metric"] for m in usecase["metrics"]]
    classifier = Task(usecase["task"]) is Task.BINARY_CLASSIFICATION
    rows = [
        [
            f"v{escape(v['version'])}",
            " ".join(badge(a, a) for a in v["aliases"]),
            *(number((v.get("metrics") or {}).get(m)) for m in metrics),
            *([number(v.get("threshold"))] if classifier else []),
            escape(v.get("data_window")),
            escape(v.get("trigger_reason")),
            created(v.get("created")),
            lineage_links(v),
        ]
        for v in models["versions"]
    ]
    aliases = ", ".join(
        f"{escape(alias)}: {('v' + escape(version)) if version else '–'}"
        for alias, version in models["aliases"].items()
    )
    return (
        f"<section id='models'><h2>Model {escape(models['registered_model'])}</h2>"
        f"<p>Aliases: {aliases}</p>"
        + table(
            [
                "version",
                "aliases",
                *(f"test {m}" for m in metrics),
                *(["threshold"] if classifier else []),
                "data window",
                "reason",
                "created (UTC)",
                "links",
            ],
            rows,
            "No registered version yet: run the use case's training DAG.",
        )
        + "</section>"
    )


def _decisions_section(decisions: list[dict[str, Any]]) -> str:
    parts = [
        "<section id='decisions'><h2>Latest decisions</h2>",
        f"<p class='note'>{escape(WHY_FIGURES_DIFFER)}</p>",
    ]
    if not decisions:
        parts.append("<p class='empty'>No deployment decision yet.</p>")
    for record in decisions:
        outcome = record.get("outcome") or ""
        kind = "pass" if outcome.startswith("promoted") or outcome == "rolled back" else "fail"
        if outcome == "awaiting decision":
            kind = "wait"
        parts.append(
            "<article class='decision'>"
            f"<h3>{escape(record.get('action'))} v{escape(record.get('version'))} "
            f"{badge(outcome, kind)}</h3>"
            f"<p>{escape(record.get('decided_at'))} by {escape(record.get('decided_by'))} · "
            f"{link(record.get('record'), 'decision record')} "
            f"({link(record.get('record_markdown'), 'Markdown')}) · {lineage_links(record)}"
            + (f" · holdout {escape(record['holdout'])}" if record.get("holdout") else "")
            + "</p>"
        )
        if record.get("reasons"):
            parts.append(
                "<ul class='reasons'>"
                + "".join(f"<li>{escape(r)}</li>" for r in record["reasons"])
                + "</ul>"
            )
        gates = [
            [
                escape(check.get("name")),
                number(check.get("value"), 4),
                number(check.get("threshold"), 4),
                badge("pass", "pass") if check.get("passed") else badge("FAIL", "fail"),
                escape(check.get("detail")),
            ]
            for check in record.get("gates") or []
        ]
        if gates:
            parts.append(
                table(["gate", "value", "threshold", "verdict", "detail"], gates, "no gates")
            )
        parts.append("</article>")
    parts.append("</section>")
    return "".join(parts)


def _drift_section(monitoring: dict[str, Any], usecase: dict[str, Any]) -> str:
    nights = monitoring.get("nights") or []
    runs = {n["night"]: n.get("airflow_url") for n in monitoring.get("history") or []}
    rows = []
    for night in nights:
        share = night.get("drift_share")
        bar = (
            f"<span class='bar'><span style='width:{min(share, 1.0) * 100:.0f}%'></span></span> "
            if isinstance(share, int | float)
            else ""
        )
        retrain = night.get("retrain")
        if retrain:
            verdict = badge("retrain", "fail")
        elif retrain is False:
            verdict = escape(f"no ({no_retrain_reason(night.get('reasons'))})")
        else:
            verdict = "–"
        rows.append(
            [
                escape(night.get("night")),
                escape(night.get("status")),
                ("v" + escape(night["champion_version"])) if night.get("champion_version") else "–",
                number(night.get("rows")),
                bar + number(share),
                escape(", ".join(night.get("drifted_columns") or [])),
                number(night.get("performance_drop")),
                verdict,
                link(night.get("report_url"), "Evidently report"),
                link(runs.get(night.get("night")), "Airflow run", "_top"),
            ]
        )
    return (
        "<section id='drift'><h2>Drift, last nights</h2>"
        + table(
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
                "run",
            ],
            rows,
            "No drift night recorded yet (the drift check runs nightly once a champion serves).",
        )
        + "</section>"
    )


def _partition_rows(partitions: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            escape(p.get("date")),
            escape(p.get("status")),
            number(p.get("rows_valid")),
            number(p.get("rows_quarantined")),
            f"<code>{escape(p.get('validation_id'))}</code>",
            escape(p.get("message")),
        ]
        for p in partitions
    ]


def _ingestion_section(ingestion: dict[str, Any], features: dict[str, Any]) -> str:
    headers = ["date", "status", "rows valid", "quarantined", "validation id", "message"]
    materialized = [
        [escape(view), escape(r.get("from")), escape(r.get("to")), number(r.get("intervals"))]
        for view, r in (features.get("materialized") or {}).items()
    ]
    return (
        "<section id='ingestion'><h2>Validation and quarantine</h2>"
        f"<p>{link(ingestion.get('data_docs_url'), 'Great Expectations Data Docs')}</p>"
        "<h3>Validated partitions</h3>"
        + table(headers, _partition_rows(ingestion["validated_partitions"]), "None yet.")
        + "<h3>Quarantined rows</h3>"
        + table(headers, _partition_rows(ingestion["quarantined_partitions"]), "None.")
        + "<h3>Features online</h3>"
        + table(["feature view", "from", "to", "intervals"], materialized, "Nothing yet.")
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
        f"<h2>Champion's model card (v{escape(models['aliases']['champion'])})</h2>"
        f"<p>{link(url, 'open the model card')}</p>"
        f"<iframe title='model card' src='{escape(url)}'></iframe></section>"
    )


def render_page(state: dict[str, Any]) -> str:
    """A use case's page (served at ``/mlops/<usecase>/``: links are relative to it)."""
    models, usecase = state["models"], state["usecase"]
    task = usecase["task"].replace("_", " ")
    return "".join(
        [
            document_head(f"MLOps: {usecase['model_name']}"),
            "<p class='muted'><a href='../'>All use cases</a></p>",
            f"<h1>MLOps: {escape(models['registered_model'])}</h1>",
            f"<p>{escape(usecase['description'])}</p>",
            f"<p class='muted'>Use case <b>{escape(usecase['name'])}</b> · {escape(task)} of "
            f"<code>{escape(usecase['label'])}</code> per "
            f"<code>{escape(usecase['entity_key'])}</code> ({escape(usecase['cadence'])}) · "
            f"primary metric {escape(usecase['primary_metric'])} · "
            f"owner {escape(usecase['owner'])}</p>",
            f"<p class='muted'>State of {escape(state['mlops_home'])} "
            f"({escape(state['profile'])} profile) at {escape(state['generated_at'])} · "
            f"<a href='../api/{escape(usecase['name'])}/status'>JSON</a>"
            + (
                " · " + link(state["links"]["mlflow_ui"], "MLflow UI", "_blank")
                if state["links"]["mlflow_ui"]
                else ""
            )
            + "</p>",
            "<nav><a href='#charts'>Charts</a><a href='#models'>Models</a>"
            "<a href='#decisions'>Decisions</a><a href='#drift'>Drift</a>"
            "<a href='#scoring'>Scoring</a><a href='#shadow'>Shadow</a>"
            "<a href='#ingestion'>Validation</a><a href='#model-card'>Model card</a></nav>",
            charts_section(state),
            _models_section(models, usecase),
            _decisions_section(state["decisions"]),
            _drift_section(state.get("monitoring") or {}, usecase),
            scoring_section(state),
            shadow_section(state),
            _ingestion_section(state["ingestion"], state["features"]),
            _card_section(models),
            chart_scripts(f"../static/{plotly_js_name()}"),
            "</body></html>",
        ]
    )
