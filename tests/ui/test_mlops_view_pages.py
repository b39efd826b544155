"""The MLOps view's documents and charts without a prepared platform: Markdown rendered by
markdown-it (the model card's HTML, decision records), and the figures' JSON as a page embeds
it."""

from __future__ import annotations

import json
import re

from mlops_pipeline.deployment.records import DecisionRecord, decision_markdown
from mlops_pipeline.platform.mlops_view.charts import chart, plotly_js, plotly_js_name
from mlops_pipeline.platform.mlops_view.documents import render_document
from mlops_pipeline.training.model_card import render_html, render_markdown

SECTIONS = [
    ("Task", ["- Binary classification of `churned`", "- Owner: ml-team"]),
    (
        "Metrics on the test daily partitions",
        ["| metric | value |", "|---|---|", "| roc_auc | 0.8 |"],
    ),
    (
        "Why it predicts what it predicts",
        ["Top features:", "1. `tenure` (0.300)", "2. `plan` (0.1)"],
    ),
    ("Model", ["scikit-learn pipeline, then `Hist`", "- Parameters: `{'max_iter': 60}`"]),
]


def test_the_model_cards_html_is_its_markdown_rendered():
    page = render_html("Model card: churn v1", SECTIONS)
    body = page[page.index("<body>") :]
    for expected in [
        "<h1>Model card: churn v1</h1>",
        "<li>Binary classification of <code>churned</code></li>",
        "<td>roc_auc</td>",
        "<ol>\n<li><code>tenure</code> (0.300)</li>",
        "<li>Parameters: <code>{'max_iter': 60}</code></li>",
        '<img src="shap_importance.png" alt="SHAP importance" />',
    ]:
        assert expected in body, expected
    assert "`" not in body and "- " not in re.sub(r"<[^>]+>", "", body)
    # The Markdown file is untouched: the backticks stay in it.
    assert "`churned`" in render_markdown("Model card: churn v1", SECTIONS)


def test_a_decision_record_is_served_as_html_with_its_markup_escaped(tmp_path):
    record = DecisionRecord(
        action="promote",
        outcome="rejected",
        model_name="churn-classifier",
        version="2",
        reasons=["floor:roc_auc <script>alert(1)</script> below `0.7`"],
        airflow={"dag_id": "churn__deploy", "run_id": "manual__1"},
    )
    path = tmp_path / "decisions" / "x.md"
    path.parent.mkdir()
    path.write_text(decision_markdown(record))
    page = render_document(path, "decisions/x.md")
    assert "<title>Promote: churn-classifier v2</title>" in page
    assert "<li>Outcome: <strong>rejected</strong></li>" in page
    assert "<code>manual__1</code>" in page and "<code>0.7</code>" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # From documents/decisions/x.md: the use case two levels up, the raw file under reports/.
    assert "<a href='../../'>Back to the use case</a>" in page
    assert "<a href='../../reports/decisions/x.md'>Markdown</a>" in page


def test_a_chart_embeds_its_figure_as_json_safe_inside_a_script():
    figure = {"data": [{"y": [1.0, float("nan")], "name": "</script><b>"}], "layout": {}}
    html = chart("chart-x", figure)
    (payload,) = re.findall(
        r"<script type='application/json' data-chart='chart-x'>(.*)</script>", html
    )
    assert "</script><b>" not in payload
    assert json.loads(payload) == {
        "data": [{"y": [1.0, None], "name": "</script><b>"}],
        "layout": {},
    }


def test_plotly_js_comes_from_the_installed_package():
    text, js_version = plotly_js()
    assert js_version in text[:500] and len(text) > 1_000_000
    assert plotly_js_name() == f"plotly-{js_version}.min.js"
