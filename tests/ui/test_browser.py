"""The web UI in a real browser (Playwright driving Debian's Chromium) against the local stack
``make airflow`` starts: login, every DAG and its docs, a training run triggered from the UI's
form, the promotion approved in Required Actions, the MLOps view, and a clean stop.

Screenshots go to ``test-artifacts/browser/`` (git-ignored). With ``MLOPS_UPDATE_SCREENSHOT=1``
the MLOps view's screenshot also replaces ``docs/mlops_view.png`` (the README's).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.platform.local_stack.environment import ADMIN, PASSWORDS_FILE, project_dag_ids
from mlops_pipeline.serving.process import free_port
from tests.conftest import REPO, skip_or_fail
from tests.ui.state import DAYS, prepare_lake, record_nights

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "browser"
README_SCREENSHOT = REPO / "docs" / "mlops_view.png"
STACK_START_SECONDS = 420
RUN_SECONDS = 600
# How long a deferral stands before the test answers it (see _wait_until_awaiting_input).
SCHEDULER_GRACE_SECONDS = 15
UI_MS = 60_000
REASON = "browser test"


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = (
        f"Chromium is not installed at {CHROMIUM}: `make test` installs it with apt-get "
        "(needs root and Debian's package index)"
    )
    skip_or_fail(reason)


@dataclass
class Stack:
    process: subprocess.Popen
    home: Path
    url: str
    ports: list[int]
    output: list[str] = field(default_factory=list)

    @property
    def password(self) -> str:
        return json.loads((self.home / "airflow" / PASSWORDS_FILE).read_text())[ADMIN]

    def api(self) -> httpx.Client:
        # httpx's 5 s default is less than the API server takes on a busy machine.
        token = httpx.post(
            f"{self.url}/auth/token",
            json={"username": ADMIN, "password": self.password},
            timeout=30,
        ).json()["access_token"]
        return httpx.Client(
            base_url=f"{self.url}/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def log(self) -> str:
        return "".join(self.output[-60:])


def _descendants(pid: int) -> list:
    import psutil

    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _stop(stack: Stack) -> list:
    """SIGTERM to `make airflow`'s process, as Ctrl-C would; what is still alive after."""
    import psutil

    everything = _descendants(stack.process.pid)
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGTERM)
        stack.process.wait(timeout=90)
    _, alive = psutil.wait_procs(everything, timeout=10)
    return alive


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """`python -m mlops_pipeline.platform.local_stack` (what `make airflow` runs) on a temp home
    with a validated lake and registered features, approvals required, on free ports."""
    _require_chromium()
    root = tmp_path_factory.mktemp("stack")
    home = root / "home"
    prepare_lake(get_settings().replace(home=home))
    ports = [free_port() for _ in range(3)]
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow/airflow.db",
        "AIRFLOW_PORT": str(ports[0]),
        "MLFLOW_PORT": str(ports[1]),
        "MODEL_SERVER_PORT": str(ports[2]),
        "MLOPS_REQUIRE_APPROVAL": "true",
        "MLOPS_SERVING_POLL_SECONDS": "2",
        # Hyperparameters are the declaration's: train fast (was the form's max_iter).
        "MLOPS_USECASE_OVERRIDES": json.dumps(
            {"churn": {"training": {"model": {"params": {"max_iter": 60}}}}}
        ),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_pipeline.platform.local_stack"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = Stack(process, home, f"http://127.0.0.1:{ports[0]}", ports)
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            running.output.append(line)
            if "The MLOps platform is up" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + STACK_START_SECONDS
    while not ready.wait(1):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(running)
            pytest.fail(f"the local stack did not come up:\n{running.log()}")
    time.sleep(1)  # the rest of the banner
    try:
        yield running
    finally:
        for process_left in _stop(running):
            process_left.kill()


@pytest.fixture(scope="module")
def browser(stack) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser, stack) -> Iterator[object]:
    """One logged-in tab for the module, through the login form."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(UI_MS)
    tab = context.new_page()
    tab.goto(stack.url + "/")
    tab.wait_for_url("**/auth/login**")
    tab.screenshot(path=ARTIFACTS / "01-login.png")
    tab.get_by_label("Username").fill(ADMIN)
    tab.get_by_label("Password").fill(stack.password)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(lambda url: "/auth/" not in url)
    yield tab
    context.close()


def _doc_heading(dag_id: str) -> str:
    """The first Markdown heading of the DAG's ``doc_md`` (written by the factory from the use
    case's declaration)."""
    from mlops_pipeline.orchestration.factory import build_dags

    doc = build_dags(dag_id.split("__")[0])[dag_id].doc_md
    heading = next(line.lstrip("#").strip() for line in doc.splitlines() if line.startswith("#"))
    return heading.replace("`", "")  # rendered: code spans show without their backticks


def _wait_for_run(stack: Stack, dag_id: str, seconds: float = RUN_SECONDS) -> dict:
    deadline = time.monotonic() + seconds
    with stack.api() as api:
        while time.monotonic() < deadline:
            runs = api.get(f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after"}).json()
            run = (runs.get("dag_runs") or [None])[0]
            if run and run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
    pytest.fail(f"{dag_id} did not finish in {seconds:.0f} s\n{stack.log()}")


def test_without_chromium_the_tests_skip_unless_services_are_required(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make test"):
        _require_chromium()
    monkeypatch.setenv("REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        _require_chromium()


def test_anonymous_visitors_get_the_login_and_no_mlops_data(browser, stack):
    context = browser.new_context()
    try:
        anonymous = context.new_page()
        answer = anonymous.goto(stack.url + "/mlops/api/churn/status")
        assert answer.status == 401
        anonymous.goto(stack.url + "/dags")
        anonymous.wait_for_url("**/auth/login**")
    finally:
        context.close()


def test_every_project_dag_is_listed_with_its_docs(page, stack):
    page.goto(stack.url + "/dags")
    for dag_id in project_dag_ids():
        page.get_by_role("link", name=dag_id, exact=True).wait_for()
    page.screenshot(path=ARTIFACTS / "02-dags.png", full_page=True)
    for dag_id in project_dag_ids():
        page.goto(f"{stack.url}/dags/{dag_id}")
        page.get_by_role("button", name="Dag Docs").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text(_doc_heading(dag_id), exact=True).wait_for()
        if dag_id == "churn__train":
            page.screenshot(path=ARTIFACTS / "03-dag-docs.png")
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")


def test_training_triggered_from_the_form_succeeds(page, stack):
    page.goto(f"{stack.url}/dags/churn__train")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=element_window_end]").fill(DAYS[-1].isoformat())
    dialog.locator("input[name=element_reason]").fill(REASON)
    page.screenshot(path=ARTIFACTS / "04-trigger-form.png")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    page.wait_for_url("**/dags/churn__train/runs/**")
    run_url = page.url

    run = _wait_for_run(stack, "churn__train")
    assert run["state"] == "success", stack.log()
    assert run["conf"]["window_end"] == DAYS[-1].isoformat()
    assert run["conf"]["reason"] == REASON
    page.goto(run_url)
    page.get_by_text("success", exact=False).first.wait_for()
    page.screenshot(path=ARTIFACTS / "05-training-run.png")


def _wait_until_awaiting_input(stack: Stack, dag_id: str, task_id: str) -> None:
    """Until the newest run's HITL task has been deferred, awaiting input, for
    SCHEDULER_GRACE_SECONDS.

    Airflow 3.3.2 fails a deferred task whose trigger fires before the scheduler has processed
    the worker's exit from the deferral (apache/airflow#67287, the queued-state variant); a
    person answering takes longer than that, a test clicking at once on a busy machine may not.
    """
    deadline = time.monotonic() + 60  # the request is already in Required Actions
    with stack.api() as api:
        while True:
            (run,) = api.get(
                f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 1}
            ).json()["dag_runs"]
            state = api.get(
                f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/{task_id}"
            ).json()["state"]
            if state == "awaiting_input":
                break
            assert time.monotonic() < deadline, f"{task_id} is {state}\n{stack.log()}"
            time.sleep(1)
    time.sleep(SCHEDULER_GRACE_SECONDS)


def test_the_promotion_waits_in_required_actions_and_is_approved_there(page, stack):
    page.goto(f"{stack.url}/required_actions")
    deadline = time.monotonic() + RUN_SECONDS
    subject = page.get_by_text("Promote churn-classifier v1 to champion?").first
    while not subject.is_visible():
        assert time.monotonic() < deadline, f"no pending approval\n{stack.log()}"
        page.wait_for_timeout(3000)
        page.reload()
    page.screenshot(path=ARTIFACTS / "06-required-actions.png")
    subject.click()
    # The body is the gate report, rendered from Markdown: a table of every gate.
    gate_cell = page.get_by_role("cell", name="floor:roc_auc")
    gate_cell.wait_for()
    assert page.get_by_role("cell", name="budget:p99_latency_ms").is_visible()
    page.screenshot(path=ARTIFACTS / "07-approval-form.png", full_page=True)
    _wait_until_awaiting_input(stack, "churn__deploy", "approve")
    page.get_by_role("button", name="Approve", exact=True).click()

    run = _wait_for_run(stack, "churn__deploy")
    assert run["state"] == "success", stack.log()
    with stack.api() as api:
        tasks = api.get(f"/dags/churn__deploy/dagRuns/{run['dag_run_id']}/taskInstances").json()[
            "task_instances"
        ]
    states = {t["task_id"]: t["state"] for t in tasks}
    assert (states["approve"], states["promote"]) == ("success", "success"), states


def test_the_mlops_view_shows_the_new_version(page, stack):
    record_nights(get_settings().replace(home=stack.home), 14)
    page.goto(stack.url + "/dags")
    page.get_by_test_id("nav-sidebar").get_by_role("link", name="MLOps").click()
    page.wait_for_url("**/plugin/mlops")
    view = page.frame_locator("iframe").first
    # The view opens on its use-case picker; churn is one of the declared use cases.
    view.get_by_role("heading", name="MLOps: use cases").wait_for()
    view.get_by_role("link", name="store_demand").wait_for()
    view.get_by_role("link", name="churn", exact=True).click()
    view.get_by_role("heading", name="MLOps: churn-classifier").wait_for()
    models = view.locator("#models")
    assert "v1" in models.inner_text() and REASON in models.inner_text()
    models.locator(".badge.champion").wait_for()
    decision = view.locator("#decisions article").first
    assert "promoted" in decision.inner_text()
    assert f"{ADMIN} (Airflow HITL: Approve" in decision.inner_text()
    assert view.locator("#drift tbody tr").count() == 14
    assert view.locator("#ingestion").get_by_text(DAYS[-1].isoformat()).count() >= 1
    view.locator(".chart .main-svg").first.wait_for()  # the charts drawn, as a user sees them
    page.screenshot(path=ARTIFACTS / "08-mlops-in-airflow.png")
    if os.environ.get("MLOPS_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=README_SCREENSHOT)

    page.goto(stack.url + "/mlops/churn/")
    page.get_by_role("heading", name="Champion's model card (v1)").wait_for()
    page.frame_locator("iframe[title='model card']").get_by_text("SHAP").first.wait_for()
    page.screenshot(path=ARTIFACTS / "09-mlops-view.png", full_page=True)
    for link in ["Great Expectations Data Docs", "decision record"]:
        href = page.get_by_role("link", name=link).first.get_attribute("href")
        assert page.request.get(f"{stack.url}/mlops/churn/{href}").status == 200, href


def test_charts_and_documents_render_with_every_outside_host_blocked(browser, stack):
    """As in a production network that reaches nothing outside: the MLOps view's charts, the
    rendered decision record and model card, and the Data Docs all work from the stack alone,
    and none of them even asks an outside host for anything."""
    from urllib.parse import urlsplit

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(UI_MS)
    outside: list[str] = []

    def local_only(route):
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    try:
        tab = context.new_page()
        tab.goto(stack.url + "/")
        tab.get_by_label("Username").fill(ADMIN)
        tab.get_by_label("Password").fill(stack.password)
        tab.get_by_role("button", name="Sign in").click()
        tab.wait_for_url(lambda url: "/auth/" not in url)

        tab.goto(stack.url + "/mlops/churn/")
        tab.locator(".chart .main-svg").first.wait_for()  # plotly drew into the page
        drawn = tab.locator(".chart .main-svg").count()
        assert drawn >= 1 and drawn >= tab.locator("script[data-chart]").count()
        tab.screenshot(path=ARTIFACTS / "10-mlops-charts-offline.png", full_page=True)

        record = tab.get_by_role("link", name="decision record").first.get_attribute("href")
        tab.goto(f"{stack.url}/mlops/churn/{record}")
        tab.locator("table").first.wait_for()  # the gate table, rendered from Markdown
        assert "`" not in tab.locator("body").inner_text()
        tab.screenshot(path=ARTIFACTS / "11-decision-record.png", full_page=True)

        tab.goto(stack.url + "/mlops/churn/")
        docs = tab.get_by_role("link", name="Great Expectations Data Docs").first
        tab.goto(f"{stack.url}/mlops/churn/{docs.get_attribute('href')}")
        # The page's scripts are the site's own copies, and it says the platform's verdict.
        assert tab.evaluate("() => typeof window.jQuery") == "function"
        assert "Validated" in tab.locator("body").inner_text()
        tab.screenshot(path=ARTIFACTS / "12-data-docs-offline.png", full_page=True)
    finally:
        context.close()
    assert outside == [], outside


def test_sigterm_stops_every_process_and_frees_the_ports(stack):
    alive = _stop(stack)
    assert stack.process.returncode == 0, stack.log()
    assert "Stopped." in stack.log()
    assert not alive, [p.pid for p in alive]
    for port in stack.ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, port
