"""The MLOps view's HTTP API, mounted by Airflow's own api-server app with its login: a picker
of the declared use cases, and each use case's pages."""

from __future__ import annotations

import os
import re

import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.platform.mlops_view.files import resolve_report
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
    # The same state as `mlops-pipeline status`.
    assert state["models"]["versions"] == status["models"]["versions"]
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
        assert shown["record"].startswith("reports/decisions/") and shown["record"].endswith(".md")
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
    links = set(re.findall(r"href='((?:reports|model-card)/[^']+)'", text))
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
