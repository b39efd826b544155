"""The MLOps view's HTTP API, mounted by Airflow's own api-server app with its login: a picker
of the declared use cases, and each use case's pages."""

from __future__ import annotations

import json
import os
import re
from html import escape
from urllib.parse import urljoin

import plotly.graph_objects as go
import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.monitoring.records import SUMMARY, night_dir
from mlops_pipeline.platform.mlops_view.files import resolve_report
from mlops_pipeline.platform.mlops_view.sections import WHY_FIGURES_DIFFER
from mlops_pipeline.platform.status import platform_status
from tests.ui.conftest import login
from tests.ui.state import (
    DAYS,
    GOOD,
    QUARANTINE_DAY,
    REGRESSION,
    decision_files,
    prepare_lake,
    record_nights,
    record_scored_partitions,
    record_shadow,
    train_and_decide,
    write_usecases,
)

CHURN = "churn"
PROTECTED = [
    "/mlops/",
    "/mlops/api/usecases",
    f"/mlops/{CHURN}/",
    f"/mlops/api/{CHURN}/status",
    f"/mlops/{CHURN}/reports/data_docs/index.html",
    f"/mlops/{CHURN}/model-card/1/model_card.html",
]


@pytest.fixture(scope="module", autouse=True)
def two_usecases(tmp_path_factory):
    """The module's use-cases root: the shipped churn folder and a regression use case (set
    before ``prepared_home`` reads the settings; the view reads them per request)."""
    root = write_usecases(tmp_path_factory.mktemp("usecases"))
    previous = os.environ.get("MLOPS_USECASES_DIR")
    os.environ["MLOPS_USECASES_DIR"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("MLOPS_USECASES_DIR", None)
    else:
        os.environ["MLOPS_USECASES_DIR"] = previous


@pytest.fixture(scope="module")
def regression_home(prepared_home) -> str:
    """The regression use case's state in the same home: a lake, v1 promoted, 5 nights."""
    settings = get_settings().for_usecase(REGRESSION)
    prepare_lake(settings)
    version = train_and_decide(settings, GOOD, "regression")
    record_nights(settings, 5)
    return version


@pytest.fixture(scope="module")
def token(airflow_api) -> str:
    return login(airflow_api)


@pytest.fixture(scope="module")
def view(airflow_api, token, prepared_home):
    airflow_api.headers["Authorization"] = f"Bearer {token}"
    yield airflow_api
    airflow_api.headers.pop("Authorization")


def test_the_plugin_registers_the_app_and_a_navigation_entry(airflow_api, token):
    answer = airflow_api.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"})
    (plugin,) = [p for p in answer.json()["plugins"] if p["name"] == "mlops_view"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/mlops"
    (entry,) = plugin["external_views"]
    assert (entry["name"], entry["href"], entry["destination"]) == ("MLOps", "mlops/", "nav")


@pytest.mark.parametrize("path", PROTECTED)
def test_anonymous_and_forged_requests_are_refused(airflow_api, path):
    assert airflow_api.get(path).status_code == 401
    forged = airflow_api.get(path, headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 403
    airflow_api.cookies.set("_token", "not.a.token")
    try:
        assert airflow_api.get(path).status_code == 403
    finally:
        airflow_api.cookies.clear()


def test_the_ui_cookie_is_accepted_like_the_bearer_token(airflow_api, token, prepared_home):
    airflow_api.cookies.set("_token", token)
    try:
        assert airflow_api.get(f"/mlops/api/{CHURN}/status").status_code == 200
    finally:
        airflow_api.cookies.clear()


def test_status_api_shows_versions_decisions_drift_and_validation(view):
    answer = view.get(f"/mlops/api/{CHURN}/status")
    assert answer.status_code == 200
    state = answer.json()
    settings = get_settings().for_usecase(CHURN)
    status = platform_status(settings, 30)
    # The same state as `mlops-pipeline status`, and the view's links beside it.
    links = {"airflow_url", "mlflow_run_url", "mlflow_version_url"}
    versions = state["models"]["versions"]
    without = [{k: v for k, v in version.items() if k not in links} for version in versions]
    assert without == status["models"]["versions"]
    assert state["ingestion"]["validated_partitions"] == status["ingestion"]["validated_partitions"]
    assert state["usecase"]["name"] == CHURN
    assert state["models"]["registered_model"] == settings.spec.model_name

    models = state["models"]
    assert models["aliases"] == {"champion": "1", "challenger": "2", "previous_champion": None}
    assert [(v["version"], v["aliases"]) for v in models["versions"]] == [
        ("2", ["challenger"]),
        ("1", ["champion"]),
    ]
    tracking = registry.client(settings)
    for version in models["versions"]:
        metrics = tracking.get_run(version["run_id"]).data.metrics
        assert set(version["metrics"]) == {g.metric for g in settings.spec.gate_metrics}
        assert version["metrics"]["roc_auc"] == metrics["test_roc_auc"]
    assert models["champion_card_url"] == "model-card/1/model_card.html"

    written = decision_files(settings)[::-1]
    decisions = state["decisions"]
    assert [(d["version"], d["outcome"]) for d in decisions] == [
        ("2", "rejected"),
        ("1", "promoted"),
    ]
    for shown, record in zip(decisions, written, strict=True):
        assert shown["gates"] == record["evaluation"]["gates"]["checks"]
        assert shown["gates_passed"] == record["evaluation"]["gates"]["passed"]
        assert shown["record"].startswith("documents/decisions/") and shown["record"].endswith(
            ".md"
        )
        assert shown["record_markdown"] == "reports/" + shown["record"].removeprefix("documents/")
    assert not decisions[0]["gates_passed"] and decisions[0]["reasons"]
    assert any(not g["passed"] for g in decisions[0]["gates"])
    assert all(g["passed"] for g in decisions[1]["gates"])

    nights = state["monitoring"]["nights"]
    assert len(nights) == 10 and nights[0]["night"] > nights[-1]["night"]
    assert all(n["report_url"].endswith(f"night={n['night']}/report.html") for n in nights)
    assert {n["drift_share"] for n in nights} == {round(i / 20, 2) for i in range(10)}
    assert {n["performance_metric"] for n in nights} == {"roc_auc"}

    ingestion = state["ingestion"]
    assert [p["date"] for p in ingestion["validated_partitions"]] == [
        d.isoformat() for d in reversed(DAYS)
    ]
    (quarantined,) = ingestion["quarantined_partitions"]
    assert quarantined["date"] == QUARANTINE_DAY.isoformat() and quarantined["rows_quarantined"]
    assert ingestion["data_docs_url"] == "reports/data_docs/index.html"

    fewer = view.get(f"/mlops/api/{CHURN}/status", params={"nights": 3}).json()
    assert len(fewer["monitoring"]["nights"]) == 3


def _links(text: str) -> set[str]:
    links = set(re.findall(r"href='((?:reports|documents|model-card)/[^']+)'", text))
    return links | set(re.findall(r"src='(model-card/[^']+)'", text))


def test_page_shows_the_state_and_every_link_resolves(view):
    page = view.get(f"/mlops/{CHURN}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    state = view.get(f"/mlops/api/{CHURN}/status").json()
    spec = get_settings().for_usecase(CHURN).spec
    for expected in [
        f"MLOps: {spec.model_name}",
        "<span class='badge champion'>champion</span>",
        "<span class='badge challenger'>challenger</span>",
        f"{state['models']['versions'][1]['metrics']['roc_auc']:.3f}",
        "<th>test roc_auc</th>",
        "<th>threshold</th>",
        "<th>roc_auc drop</th>",
        "floor:roc_auc",
        "improvement:roc_auc",
        "rejected",
        "promoted",
        "Evidently report",
        "Great Expectations Data Docs",
        QUARANTINE_DAY.isoformat(),
        "Champion's model card (v1)",
        f"href='../api/{CHURN}/status'",
    ]:
        assert expected in text, expected
    links = _links(text)
    assert len(links) >= 10
    for link in links:
        assert view.get(f"/mlops/{CHURN}/{link}").status_code == 200, link
    assert view.get(f"/mlops/api/{CHURN}/status").status_code == 200


def test_the_picker_lists_every_use_case_and_serves_each_ones_pages(view, regression_home):
    settings = get_settings()
    declared = view.get("/mlops/api/usecases").json()
    assert [u["name"] for u in declared] == [CHURN, REGRESSION]
    picker = view.get("/mlops/")
    assert picker.status_code == 200 and picker.headers["content-type"].startswith("text/html")
    for usecase in declared:
        spec = settings.for_usecase(usecase["name"]).spec
        assert f"<a href='{usecase['name']}/'>{usecase['name']}</a>" in picker.text
        assert spec.model_name in picker.text and spec.description in picker.text
        page = view.get(f"/mlops/{usecase['name']}/")
        assert page.status_code == 200 and f"MLOps: {spec.model_name}" in page.text
        state = view.get(f"/mlops/api/{usecase['name']}/status").json()
        assert state["usecase"]["model_name"] == spec.model_name
        assert state["models"]["registered_model"] == spec.model_name
        for link in _links(page.text):
            assert view.get(f"/mlops/{usecase['name']}/{link}").status_code == 200, link

    # The regression use case: its own versions, metrics, nights and decisions.
    regression = view.get(f"/mlops/api/{REGRESSION}/status").json()
    assert regression["usecase"]["task"] == "regression"
    assert regression["models"]["aliases"]["champion"] == regression_home
    (version,) = regression["models"]["versions"]
    assert set(version["metrics"]) == {"r2", "rmse", "mae"}
    assert all(isinstance(v, float) for v in version["metrics"].values()), version
    nights = regression["monitoring"]["nights"]
    assert len(nights) == 5 and {n["performance_metric"] for n in nights} == {"r2"}
    assert [d["version"] for d in regression["decisions"]] == [regression_home]
    page = view.get(f"/mlops/{REGRESSION}/").text
    for expected in ["<th>test r2</th>", "<th>test rmse</th>", "<th>r2 drop</th>"]:
        assert expected in page, expected
    assert f"{version['metrics']['r2']:.3f}" in page
    models = page[page.index("<section id='models'>") :].split("</section>")[0]
    assert "<th>threshold</th>" not in models, "a regressor has no decision threshold"
    assert "roc_auc" not in page
    # The classifier's page shows none of the regression's state, and the other way round.
    churn = view.get(f"/mlops/api/{CHURN}/status").json()
    assert len(churn["monitoring"]["nights"]) == 10
    assert {d["version"] for d in churn["decisions"]} == {"1", "2"}


def test_an_undeclared_use_case_is_not_found(view):
    for path in [
        "/mlops/nothing/",
        "/mlops/api/nothing/status",
        "/mlops/nothing/reports/data_docs/index.html",
        "/mlops/nothing/model-card/1/model_card.html",
        "/mlops/..%2fchurn/",
    ]:
        assert view.get(path).status_code == 404, path


def test_the_champions_model_card_comes_from_its_mlflow_run(view):
    base = f"/mlops/{CHURN}/model-card"
    card = view.get(f"{base}/1/model_card.html")
    assert card.status_code == 200 and "SHAP" in card.text
    assert "shap_importance.png" in card.text
    image = view.get(f"{base}/1/shap_importance.png")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert "SHAP" in view.get(f"{base}/1/model_card.md").text
    for missing in [f"{base}/9/model_card.html", f"{base}/1/nothing.html"]:
        assert view.get(missing).status_code == 404


def test_files_outside_the_reports_folder_are_not_served(view, prepared_home):
    secret = prepared_home / "airflow-like-secret.json"
    secret.write_text("{}")
    reports = get_settings().reports_dir
    (reports / "escape").symlink_to(prepared_home)
    base = f"/mlops/{CHURN}"
    for path in [
        f"{base}/reports/%2e%2e/airflow-like-secret.json",
        f"{base}/reports/..%2fairflow-like-secret.json",
        f"{base}/reports/escape/airflow-like-secret.json",
        f"{base}/reports/%2fetc%2fpasswd",
        f"{base}/reports/decisions",
        f"{base}/model-card/1/..%2f..%2fmodel_card.html",
        f"{base}/model-card/..%2f1/model_card.html",
    ]:
        assert view.get(path).status_code == 404, path


def test_resolve_report_refuses_every_way_out(settings):
    settings.reports_dir.mkdir(parents=True)
    (settings.reports_dir / "ok.html").write_text("ok")
    (settings.home / "secret").write_text("no")
    (settings.reports_dir / "link").symlink_to(settings.home / "secret")
    assert resolve_report(settings, "ok.html").read_text() == "ok"
    for relative in ["../secret", "/etc/passwd", "link", "sub/../../secret", ""]:
        with pytest.raises(FileNotFoundError):
            resolve_report(settings, relative)
    assert os.path.exists(settings.home / "secret")


# ---- the page's charts, links, documents, scored partitions and shadow ----------------------

MLFLOW_UI = "http://mlflow.test:5000"


def _figures(text: str) -> dict[str, dict]:
    found = re.findall(r"<script type='application/json' data-chart='([^']+)'>(.*?)</script>", text)
    return {name: json.loads(payload) for name, payload in found}


def test_the_charts_embed_the_state_they_draw(view):
    text = view.get(f"/mlops/{CHURN}/").text
    state = view.get(f"/mlops/api/{CHURN}/status").json()
    figures = _figures(text)
    for figure in figures.values():
        go.Figure(figure)  # validated against plotly's schema: no unknown property or value
    assert set(figures) == {
        "chart-drift-share",
        "chart-column-scores",
        "chart-metrics",
        "chart-gates",
    }

    history = state["monitoring"]["history"]
    assert [n["night"] for n in history] == sorted(
        n["night"] for n in state["monitoring"]["nights"]
    )
    share, threshold, retrain = figures["chart-drift-share"]["data"]
    assert share["x"] == [n["night"] for n in history]
    assert share["y"] == [round((i % 10) / 20, 2) for i in range(10)]
    spec = get_settings().for_usecase(CHURN).spec
    assert set(threshold["y"]) == {spec.drift.share_threshold}
    assert retrain["x"] == [n["night"] for n in history if n["retrain"]] and retrain["x"]

    (heatmap,) = figures["chart-column-scores"]["data"]
    assert heatmap["y"] == sorted(spec.feature_columns[:3])
    record = json.loads(
        (night_dir(get_settings().for_usecase(CHURN), DAYS[-1]) / SUMMARY).read_text()
    )
    column = heatmap["x"].index(DAYS[-1].isoformat())
    for name, row in zip(heatmap["y"], heatmap["z"], strict=True):
        assert row[column] == record["drift"]["columns"][name]["score"]

    versions = {v["version"]: v for v in state["models"]["versions"]}
    series = {trace["name"]: trace for trace in figures["chart-metrics"]["data"]}
    trained = series["roc_auc (training test)"]
    assert trained["x"] == ["v1", "v2"]
    assert trained["y"] == [
        versions["1"]["metrics"]["roc_auc"],
        versions["2"]["metrics"]["roc_auc"],
    ]
    gated = series["roc_auc (gate holdout)"]
    by_version = {
        d["challenger"]["version"]: d["challenger"]["metrics"] for d in state["decisions"]
    }
    assert gated["y"] == [by_version[x.removeprefix("v")]["roc_auc"] for x in gated["x"]]

    newest = state["decisions"][0]
    numeric = [
        c
        for c in newest["gates"]
        if not isinstance(c["value"], str | None) and not isinstance(c["threshold"], str | None)
    ]
    bars = figures["chart-gates"]["data"]
    assert [b["name"] for b in bars] == [c["name"] for c in numeric] and bars
    for bar, check in zip(bars, numeric, strict=True):
        assert bar["y"] == [check["value"], check["threshold"]]


def _external_hosts(text: str, allowed: set[str]) -> set[str]:
    hosts = set(re.findall(r"https?://([^/'\"\s<>)#]+)", text))
    return {
        h for h in hosts if h.split(":")[0] not in {"127.0.0.1", "localhost"} and h not in allowed
    }


def test_plotly_is_served_by_the_view_and_no_page_loads_from_elsewhere(view, monkeypatch):
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", MLFLOW_UI)
    page = view.get(f"/mlops/{CHURN}/").text
    (src,) = re.findall(r"<script src='([^']+)'>", page)
    assert src.startswith("../static/plotly-") and src.endswith(".min.js")
    script = view.get(f"/mlops/{CHURN}/{src}", headers={"Accept-Encoding": "gzip"})
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "max-age=31536000" in script.headers["cache-control"]
    assert script.headers["content-encoding"] == "gzip"
    assert "plotly.js" in script.text[:500] and len(script.text) > 1_000_000
    assert view.get("/mlops/static/plotly-0.0.0.min.js").status_code == 404

    documents = [page, view.get("/mlops/").text]
    # Data Docs are Great Expectations' own pages, not the view's.
    documents += [
        view.get(f"/mlops/{CHURN}/{link}").text
        for link in _links(page)
        if link.endswith((".md", ".html")) and "data_docs" not in link
    ]
    assert len(documents) >= 6
    for text in documents:
        assert not _external_hosts(text, {MLFLOW_UI.removeprefix("http://")}), text[:200]


def test_documents_are_rendered_markdown(view):
    page = view.get(f"/mlops/{CHURN}/").text
    record = re.search(r"href='(documents/decisions/[^']+\.md)'>decision record<", page).group(1)
    answer = view.get(f"/mlops/{CHURN}/{record}")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    html = answer.text
    article = html[html.index("<article") :]
    for expected in [
        "<h1>",
        "<ul>",
        "<li>Outcome: <strong>",
        "<table>",
        "<td>floor:roc_auc</td>",
        "<code>",
    ]:
        assert expected in article, expected
    assert "`" not in article and "\n- " not in article and "|---" not in article
    raw = re.search(r"href='([^']*reports/decisions/[^']+\.md)'>Markdown<", html).group(1)
    markdown = view.get(urljoin(f"/mlops/{CHURN}/{record}", raw))
    assert markdown.status_code == 200 and "| gate | value |" in markdown.text
    assert view.get(f"/mlops/{CHURN}/documents/data_docs/index.html").status_code == 404

    card = view.get(f"/mlops/{CHURN}/model-card/1/model_card.html").text
    for expected in ["<ul>", "<li>", "<code>", "<table>", '<img src="shap_importance.png"']:
        assert expected in card, expected
    assert "`" not in card and "<p>- " not in card


def test_links_lead_to_the_mlflow_and_airflow_runs(view, monkeypatch):
    state = view.get(f"/mlops/api/{CHURN}/status").json()
    assert state["links"]["mlflow_ui"] is None, "the embedded store has no UI to link to"
    assert all(v["mlflow_run_url"] is None for v in state["models"]["versions"])

    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", MLFLOW_UI + "/")
    state = view.get(f"/mlops/api/{CHURN}/status").json()
    page = view.get(f"/mlops/{CHURN}/").text
    model = state["models"]["registered_model"]
    for version in state["models"]["versions"]:
        run = f"{MLFLOW_UI}/#/runs/{version['run_id']}"
        registered = f"{MLFLOW_UI}/#/models/{model}/versions/{version['version']}"
        assert (version["mlflow_run_url"], version["mlflow_version_url"]) == (run, registered)
        assert f"href='{run}' target='_blank'" in page and f"href='{registered}'" in page
    for decision, reason in zip(state["decisions"], ["bad on purpose", "good"], strict=True):
        url = f"../../dags/{CHURN}__deploy/runs/test__{reason.replace(' ', '%20')}"
        assert decision["airflow_url"] == url
        assert f"href='{url}' target='_top'>Airflow run</a>" in page
        assert decision["mlflow_run_url"].startswith(f"{MLFLOW_UI}/#/runs/")


def test_every_no_says_why_and_gate_figures_are_explained(view):
    page = view.get(f"/mlops/{CHURN}/").text
    drift = page[page.index("<section id='drift'>") :].split("</section>")[0]
    verdicts = re.findall(r"<td>(no[^<]*)</td>", drift)
    assert verdicts and "no" not in verdicts
    cooldown = f"no (cooldown: retrain requested on {DAYS[-1].isoformat()}, 1 partition(s) ago)"
    assert cooldown in verdicts
    assert "no (no drift over the thresholds)" in verdicts
    decisions = page[page.index("<section id='decisions'>") :].split("</section>")[0]
    assert (
        escape(WHY_FIGURES_DIFFER) in decisions
        and escape(WHY_FIGURES_DIFFER) in page[: page.index("<section id='models'>")]
    )
    assert "holdout 2025-08-" in decisions


def test_without_scores_or_shadow_traffic_the_page_says_so(view, regression_home):
    page = view.get(f"/mlops/{CHURN}/").text
    assert "Not scored yet" in page and "No shadow traffic" in page
    assert "No challenger: nothing to shadow." in view.get(f"/mlops/{REGRESSION}/").text
    state = view.get(f"/mlops/api/{CHURN}/status").json()
    assert state["scoring"]["partitions"] == []
    assert state["shadow"]["challenger"] == "2" and state["shadow"]["summary"]["requests"] == 0


@pytest.fixture(scope="module")
def scored_and_shadowed(prepared_home):
    """Three scored partitions with the champion, and shadow traffic of the challenger."""
    settings = get_settings().for_usecase(CHURN)
    record_scored_partitions(settings, DAYS[-3:], "1")
    record_shadow(settings, "2", "1", requests=8, errors=1)


def test_the_last_scored_partitions_and_the_shadow_comparison(view, scored_and_shadowed):
    state = view.get(f"/mlops/api/{CHURN}/status").json()
    partitions = state["scoring"]["partitions"]
    assert [p["date"] for p in partitions] == [d.isoformat() for d in reversed(DAYS[-3:])]
    for partition in partitions:
        assert (partition["rows"], partition["model_versions"]) == (50, ["1"])
        assert partition["scores"]["positive_share"] == 0.5
        assert sum(partition["histogram"]["counts"]) == 50
        assert partition["airflow_run_ids"] == [f"scheduled__{partition['date']}"]
    shadow = state["shadow"]["summary"]
    assert (shadow["version"], shadow["requests"], shadow["errors"]) == ("2", 8, 1)
    assert shadow["agreement"] == 0.75 and 7.9 < shadow["p99_ms"] <= 8.0

    page = view.get(f"/mlops/{CHURN}/").text
    scoring = page[page.index("<section id='scoring'>") :].split("</section>")[0]
    assert f"<td>{DAYS[-1].isoformat()}</td><td>50</td><td>v1</td>" in scoring
    histograms = _figures(scoring)["chart-scores"]["data"]
    assert [h["y"] for h in histograms] == [p["histogram"]["counts"] for p in partitions]
    shadowed = page[page.index("<section id='shadow'>") :].split("</section>")[0]
    assert "Challenger v2 beside champion v1" in shadowed
    assert "<td>8</td><td>8</td><td><span class='badge fail'>1</span></td>" in shadowed
    assert "<td>0.750</td>" in shadowed
