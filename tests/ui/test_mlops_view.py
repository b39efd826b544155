"""The MLOps view's HTTP API, mounted by Airflow's own api-server app with its login."""

from __future__ import annotations

import os
import re

import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.platform.mlops_view import resolve_report
from mlops_pipeline.platform.status import platform_status
from tests.ui.conftest import login
from tests.ui.state import DAYS, QUARANTINE_DAY, decision_files

PROTECTED = [
    "/mlops/",
    "/mlops/api/status",
    "/mlops/reports/data_docs/index.html",
    "/mlops/model-card/1/model_card.html",
]


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
        assert airflow_api.get("/mlops/api/status").status_code == 200
    finally:
        airflow_api.cookies.clear()


def test_status_api_shows_versions_decisions_drift_and_validation(view):
    answer = view.get("/mlops/api/status")
    assert answer.status_code == 200
    state = answer.json()
    settings = get_settings()
    status = platform_status(settings, 30)
    # The same state as `mlops-pipeline status`.
    assert state["models"]["versions"] == status["models"]["versions"]
    assert state["ingestion"]["validated_partitions"] == status["ingestion"]["validated_partitions"]

    models = state["models"]
    assert models["aliases"] == {"champion": "1", "challenger": "2", "previous_champion": None}
    assert [(v["version"], v["aliases"]) for v in models["versions"]] == [
        ("2", ["challenger"]),
        ("1", ["champion"]),
    ]
    tracking = registry.client(settings)
    for version in models["versions"]:
        metrics = tracking.get_run(version["run_id"]).data.metrics
        assert version["test_roc_auc"] == metrics["test_roc_auc"]
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

    ingestion = state["ingestion"]
    assert [p["date"] for p in ingestion["validated_partitions"]] == [
        d.isoformat() for d in reversed(DAYS)
    ]
    (quarantined,) = ingestion["quarantined_partitions"]
    assert quarantined["date"] == QUARANTINE_DAY.isoformat() and quarantined["rows_quarantined"]
    assert ingestion["data_docs_url"] == "reports/data_docs/index.html"

    fewer = view.get("/mlops/api/status", params={"nights": 3}).json()
    assert len(fewer["monitoring"]["nights"]) == 3


def test_page_shows_the_state_and_every_link_resolves(view):
    page = view.get("/mlops/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    state = view.get("/mlops/api/status").json()
    for expected in [
        "MLOps: churn-classifier",
        "<span class='badge champion'>champion</span>",
        "<span class='badge challenger'>challenger</span>",
        f"{state['models']['versions'][1]['test_roc_auc']:.3f}",
        "floor:roc_auc",
        "improvement:roc_auc",
        "rejected",
        "promoted",
        "Evidently report",
        "Great Expectations Data Docs",
        QUARANTINE_DAY.isoformat(),
        "Champion's model card (v1)",
    ]:
        assert expected in text, expected
    links = set(re.findall(r"href='((?:reports|model-card)/[^']+)'", text))
    links |= set(re.findall(r"src='(model-card/[^']+)'", text))
    assert len(links) >= 10
    for link in links:
        assert view.get(f"/mlops/{link}").status_code == 200, link


def test_the_champions_model_card_comes_from_its_mlflow_run(view):
    card = view.get("/mlops/model-card/1/model_card.html")
    assert card.status_code == 200 and "SHAP" in card.text
    assert "shap_importance.png" in card.text
    image = view.get("/mlops/model-card/1/shap_importance.png")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert "SHAP" in view.get("/mlops/model-card/1/model_card.md").text
    for missing in ["/mlops/model-card/9/model_card.html", "/mlops/model-card/1/nothing.html"]:
        assert view.get(missing).status_code == 404


def test_files_outside_the_reports_folder_are_not_served(view, prepared_home):
    secret = prepared_home / "airflow-like-secret.json"
    secret.write_text("{}")
    reports = get_settings().reports_dir
    (reports / "escape").symlink_to(prepared_home)
    for path in [
        "/mlops/reports/%2e%2e/airflow-like-secret.json",
        "/mlops/reports/..%2fairflow-like-secret.json",
        "/mlops/reports/escape/airflow-like-secret.json",
        "/mlops/reports/%2fetc%2fpasswd",
        "/mlops/reports/decisions",
        "/mlops/model-card/1/..%2f..%2fmodel_card.html",
        "/mlops/model-card/..%2f1/model_card.html",
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
