"""The HTML pieces both pages are made of: escaping, tables, badges, the head and its style."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

STYLE = """
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
.chart{width:100%;max-width:70rem;height:320px}.note{color:#4a5568;font-style:italic}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(30rem,1fr));gap:.5rem}
.chart.wide{grid-column:1/-1;max-width:none}
"""


def escape(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def number(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return escape(value if value is not None else "–")
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(value)


def link(url: str | None, text: str, target: str | None = None) -> str:
    """``target``: ``_top`` for Airflow's pages (the view is framed in its UI), ``_blank``
    for the MLflow UI."""
    if not url:
        return "–"
    rel = " rel='noopener'" if target == "_blank" else ""
    where = f" target='{target}'{rel}" if target else ""
    return f"<a href='{escape(url)}'{where}>{escape(text)}</a>"


def table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f"<p class='empty'>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def badge(text: str, kind: str) -> str:
    return f"<span class='badge {kind}'>{escape(text)}</span>"


def created(value: Any) -> str:
    """An MLflow timestamp (milliseconds) as UTC minutes."""
    if not isinstance(value, int | float):
        return escape(value)
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def document_head(title: str, style: str = "") -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}{style}</style></head><body>"
    )
