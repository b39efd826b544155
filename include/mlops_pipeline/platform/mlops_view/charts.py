"""The page's charts as plotly.js figures (``data`` and ``layout``, plain JSON), embedded in
the page and drawn by the plotly.js the view serves itself (``PLOTLY_JS_ROUTE``): no CDN, so
they draw where the network reaches nothing but the api-server."""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from mlops_pipeline.platform.mlops_view.markup import escape

PASS, FAIL, LINE = "#38a169", "#e53e3e", "#4a5568"
_BASE_LAYOUT = {
    "margin": {"l": 55, "r": 15, "t": 35, "b": 45},
    "legend": {"orientation": "h", "y": -0.25},
    "font": {"size": 11},
}


@functools.cache
def plotly_js() -> tuple[str, str]:
    """plotly.js as shipped in the installed plotly package, and its version."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    return get_plotlyjs(), get_plotlyjs_version()


def plotly_js_name() -> str:
    """A file name carrying the version, so the browser may keep it as long as it likes."""
    return f"plotly-{plotly_js()[1]}.min.js"


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {**_BASE_LAYOUT, "title": {"text": title, "x": 0}, **extra}


def drift_share_figure(history: list[dict[str, Any]]) -> dict[str, Any]:
    nights = [n["night"] for n in history]
    retrain = [n for n in history if n["retrain"]]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "drift share",
                "x": nights,
                "y": [n["drift_share"] for n in history],
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "threshold",
                "x": nights,
                "y": [n["share_threshold"] for n in history],
                "line": {"dash": "dash", "color": FAIL},
            },
            {
                "type": "scatter",
                "mode": "markers",
                "name": "retrain requested",
                "x": [n["night"] for n in retrain],
                "y": [n["drift_share"] for n in retrain],
                "marker": {"symbol": "star", "size": 12, "color": FAIL},
            },
        ],
        "layout": _layout(
            "Share of drifted columns per night", yaxis={"range": [0, 1], "title": "share"}
        ),
    }


def column_scores_figure(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Every column's drift score per night (Evidently's per-column statistic)."""
    columns = sorted({c for n in history for c in n["columns"]})
    return {
        "data": [
            {
                "type": "heatmap",
                "x": [n["night"] for n in history],
                "y": columns,
                "z": [[(n["columns"].get(c) or {}).get("score") for n in history] for c in columns],
                "colorscale": "YlOrRd",
                "reversescale": True,
                "colorbar": {"title": {"text": "score"}},
                "hovertemplate": "%{y} on %{x}: %{z:.4f}<extra></extra>",
            }
        ],
        "layout": _layout("Drift score per column (low p-value / high distance: drift)"),
    }


def metrics_figure(
    versions: list[dict[str, Any]], decisions: list[dict[str, Any]], metrics: list[str]
) -> dict[str, Any]:
    """Each version's test metrics (training's) and the gate's holdout figures beside them."""
    ordered = sorted(versions, key=lambda v: int(v["version"]))
    labels = [f"v{v['version']}" for v in ordered]
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": f"{metric} (training test)",
            "x": labels,
            "y": [(v.get("metrics") or {}).get(metric) for v in ordered],
        }
        for metric in metrics
    ]
    gated: dict[str, dict[str, float]] = {}
    for decision in reversed(decisions):  # newest last: a re-evaluation replaces an older one
        challenger = decision.get("challenger")
        if challenger and challenger.get("version"):
            gated[str(challenger["version"])] = challenger["metrics"]
    for metric in metrics:
        shown = [v for v in ordered if metric in gated.get(v["version"], {})]
        if shown:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{metric} (gate holdout)",
                    "x": [f"v{v['version']}" for v in shown],
                    "y": [gated[v["version"]][metric] for v in shown],
                    "marker": {"symbol": "diamond-open", "size": 11},
                }
            )
    return {
        "data": data,
        "layout": _layout("Metrics across versions", xaxis={"type": "category"}),
    }


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def gates_figure(decision: dict[str, Any]) -> dict[str, Any]:
    """One small chart per numeric gate of a decision: the value against its threshold."""
    checks = [
        c for c in decision.get("gates") or [] if _numeric(c["value"]) and _numeric(c["threshold"])
    ]
    columns = min(len(checks), 4) or 1
    rows = -(-len(checks) // columns) or 1
    data: list[dict[str, Any]] = []
    layout = _layout(
        f"Gates of v{decision.get('version')}: value against threshold",
        grid={"rows": rows, "columns": columns, "pattern": "independent"},
        showlegend=False,
        height=170 * rows + 60,
    )
    for i, check in enumerate(checks, 1):
        axis = "" if i == 1 else str(i)
        data.append(
            {
                "type": "bar",
                "name": check["name"],
                "x": ["value", "threshold"],
                "y": [check["value"], check["threshold"]],
                "marker": {"color": [PASS if check["passed"] else FAIL, LINE]},
                "xaxis": f"x{axis}",
                "yaxis": f"y{axis}",
                "hovertemplate": "%{x}: %{y:.4f}<extra>" + escape(check["name"]) + "</extra>",
            }
        )
        layout[f"xaxis{axis}"] = {"title": {"text": check["name"]}}
    return {"data": data, "layout": layout}


def scores_figure(partitions: list[dict[str, Any]], shown: int = 3) -> dict[str, Any]:
    """The score distribution of the newest scored partitions, one histogram each."""
    data = []
    for partition in partitions[:shown]:
        histogram = partition["histogram"]
        edges = histogram["edges"]
        data.append(
            {
                "type": "bar",
                "name": f"{partition['date']} ({', '.join(partition['model_versions'])})",
                "x": [round((a + b) / 2, 6) for a, b in zip(edges, edges[1:], strict=False)],
                "y": histogram["counts"],
                "opacity": 0.6,
            }
        )
    return {
        "data": data,
        "layout": _layout(
            "Score distribution of the last scored partitions",
            barmode="overlay",
            xaxis={"title": "score"},
            yaxis={"title": "rows"},
        ),
    }


def _finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has neither, and plotly leaves a gap for null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def chart(chart_id: str, figure: dict[str, Any], wide: bool = False) -> str:
    """A chart's place in the page and its figure as JSON (``</`` escaped: the JSON sits in a
    script element); ``wide`` spans the whole row of charts."""
    payload = json.dumps(_finite(figure), allow_nan=False, default=str).replace("</", "<\\/")
    height = figure.get("layout", {}).get("height")
    style = f" style='height:{int(height)}px'" if height else ""
    kind = "chart wide" if wide else "chart"
    return (
        f"<div class='{kind}' id='{escape(chart_id)}'{style}></div>"
        f"<script type='application/json' data-chart='{escape(chart_id)}'>{payload}</script>"
    )


def chart_scripts(js_url: str) -> str:
    """plotly.js from the view, then every embedded figure drawn into its place."""
    return (
        f"<script src='{escape(js_url)}'></script><script>"
        "document.querySelectorAll('script[data-chart]').forEach(function(s){"
        "var f=JSON.parse(s.textContent);"
        "Plotly.newPlot(s.dataset.chart,f.data,f.layout,"
        "{displaylogo:false,responsive:true});});</script>"
    )
