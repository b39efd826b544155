"""The platform's notifier (mlops_pipeline.orchestration.notifications), called as Airflow calls
a task callback, against local webhook and SMTP receivers and against dead ones."""

from __future__ import annotations

import socketserver
import threading
import time
from types import SimpleNamespace

import pytest

from mlops_pipeline.orchestration import notifications
from mlops_pipeline.serving.process import free_port
from tests.webhook_receiver import json_receiver


def _context(task_id: str = "promote", result: dict | None = None, error=None) -> dict:
    ti = SimpleNamespace(
        dag_id="churn__deploy",
        task_id=task_id,
        run_id="manual__1",
        try_number=1,
        log_url="http://airflow.example/dags/churn__deploy/runs/manual__1/tasks/promote",
        xcom_pull=lambda task_ids: result if task_ids == task_id else None,
    )
    return {"ti": ti, "task_instance": ti, "exception": error}


def _logged(capsys) -> str:
    """What the notifier logged (Airflow's structlog writes to the console, not to caplog)."""
    out, err = capsys.readouterr()
    return out + err


@pytest.fixture
def webhook(monkeypatch):
    """A local webhook receiver; MLOPS_NOTIFY_URL points at it. Yields what it received."""
    server, received = json_receiver()
    monkeypatch.setenv("MLOPS_NOTIFY_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
    yield received
    server.shutdown()
    server.server_close()


def test_a_promotion_and_a_rollback_post_their_event_and_new_aliases(webhook):
    promoted = {"aliases": {"champion": "3", "previous_champion": "2"}, "decision_record": "r"}
    notifications.PlatformNotifier(notifications.PROMOTED)(_context(result=promoted))
    rolled_back = {"aliases": {"champion": "2", "previous_champion": "3"}}
    notifier = notifications.PlatformNotifier(notifications.ROLLED_BACK)
    notifier(_context("roll_back", result=rolled_back))
    first, second = webhook
    assert (first["event"], first["model"], first["usecase"]) == (
        "promoted",
        "churn-classifier",
        "churn",
    )
    assert first["title"] == "churn-classifier v3 promoted to champion"
    assert first["aliases"] == promoted["aliases"] and first["url"].endswith("/tasks/promote")
    assert second["event"] == "rolled_back" and second["task_id"] == "roll_back"
    assert second["title"] == "churn-classifier rolled back: v2 is champion again"


def test_a_failure_posts_the_error(webhook):
    error = ValueError("version 9 does not exist")
    notifications.PlatformNotifier(notifications.TASK_FAILED)(_context("evaluate", error=error))
    (event,) = webhook
    assert event["event"] == "task_failed" and event["task_id"] == "evaluate"
    assert event["error"] == "ValueError: version 9 does not exist"
    assert event["title"] == "churn__deploy.evaluate failed: version 9 does not exist"


def test_nothing_is_sent_when_no_target_is_set(monkeypatch):
    monkeypatch.delenv("MLOPS_NOTIFY_URL", raising=False)
    monkeypatch.delenv("MLOPS_NOTIFY_EMAIL", raising=False)
    sent: list[object] = []
    monkeypatch.setattr(notifications.WebhookNotifier, "notify", lambda *a: sent.append(a))
    monkeypatch.setattr(notifications, "email_notifier", lambda *a: sent.append(a))
    notifications.PlatformNotifier(notifications.TASK_FAILED)(_context(error=ValueError("x")))
    assert sent == []


def test_a_dead_or_slow_webhook_never_fails_the_callback(monkeypatch, capsys):
    monkeypatch.setenv("MLOPS_NOTIFY_URL", f"http://127.0.0.1:{free_port()}/hook")  # nobody
    notifier = notifications.PlatformNotifier(notifications.TASK_FAILED)
    notifier(_context(error=ValueError("x")))
    assert "not delivered to the webhook" in _logged(capsys)

    # A target that accepts the connection and never answers: given up after the timeout.
    released = threading.Event()
    silent = socketserver.ThreadingTCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    silent.daemon_threads = True
    silent.RequestHandlerClass = type(
        "Silent", (socketserver.BaseRequestHandler,), {"handle": lambda self: released.wait(10)}
    )
    threading.Thread(target=silent.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("MLOPS_NOTIFY_URL", f"http://127.0.0.1:{silent.server_address[1]}/")
    monkeypatch.setenv("MLOPS_NOTIFY_TIMEOUT_SECONDS", "0.5")
    started = time.monotonic()
    notifier(_context(error=ValueError("x")))
    assert time.monotonic() - started < 3
    assert "timed out" in _logged(capsys)
    released.set()
    silent.shutdown()
    silent.server_close()


class _SmtpReceiver(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib to deliver one message; kept in ``messages``."""

    messages: list[str] = []

    def handle(self) -> None:
        self.wfile.write(b"220 localhost\r\n")
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ", 1)[0].upper()
            if verb == "DATA":
                self.wfile.write(b"354 go on\r\n")
                body = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    body.append(data.decode())
                self.messages.append("".join(body))
                self.wfile.write(b"250 queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def _smtp_connection(port: int) -> str:
    extra = "disable_tls=true&disable_ssl=true&from_email=mlops%40example.com&retry_limit=0"
    return f"smtp://127.0.0.1:{port}?{extra}"


def test_email_goes_through_the_smtp_connection_and_a_dead_server_is_logged(monkeypatch, capsys):
    monkeypatch.delenv("MLOPS_NOTIFY_URL", raising=False)
    monkeypatch.setenv("MLOPS_NOTIFY_EMAIL", "ops@example.com, ml@example.com")
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpReceiver)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    _SmtpReceiver.messages = []
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_connection(server.server_address[1]))
    notifier = notifications.PlatformNotifier(notifications.TASK_FAILED)
    notifier(_context("evaluate", error=ValueError("no such version")))
    server.shutdown()
    server.server_close()
    (message,) = _SmtpReceiver.messages
    assert "Subject: [mlops] churn__deploy.evaluate failed: no such version" in message
    assert "ops@example.com" in message and "ml@example.com" in message

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_connection(free_port()))  # nobody
    notifier(_context("evaluate", error=ValueError("no such version")))
    assert "not e-mailed" in _logged(capsys)
