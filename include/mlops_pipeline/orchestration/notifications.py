"""Telling a person what needs them: a task failed for good, a promotion waits for approval, a
model was promoted or rolled back.

Through Airflow's notifier framework: ``PlatformNotifier`` is a task callback
(``on_failure_callback`` in the shared ``default_args``, ``on_success_callback`` on the promote
and roll-back tasks) and one of the approval operator's ``notifiers``. It sends to every target
the settings name: a webhook receiving the event as JSON (``MLOPS_NOTIFY_URL``,
``WebhookNotifier``) and e-mail through the SMTP provider's ``SmtpNotifier`` and its
``smtp_default`` connection (``MLOPS_NOTIFY_EMAIL``); both off when unset. The targets are read
as the callback runs, in the worker's environment like every task's settings, so every DAG
carries the notifier whether or not a target is set.

A notification never changes a run's outcome: a target that is down, slow or misconfigured is
logged and skipped (the approval operator, unlike the task callbacks, would fail its task on a
notifier's error).
"""

from __future__ import annotations

import html
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Literal

from airflow.sdk import BaseNotifier

from mlops_pipeline.orchestration.assets import SEPARATOR

Event = Literal["task_failed", "approval_pending", "promoted", "rolled_back"]
TASK_FAILED: Event = "task_failed"
APPROVAL_PENDING: Event = "approval_pending"
PROMOTED: Event = "promoted"
ROLLED_BACK: Event = "rolled_back"


def event_payload(event: Event, context: Mapping[str, Any]) -> dict[str, Any]:
    """What the targets receive: the event, where it happened (use case, model, DAG, run,
    task, the task's page in the UI) and what it says (error, new aliases, approval link)."""
    ti = context["ti"]
    usecase = ti.dag_id.split(SEPARATOR, 1)[0]
    payload: dict[str, Any] = {
        "event": event,
        "usecase": usecase,
        "model": _model_name(usecase),
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try_number": ti.try_number,
        "url": _task_url(ti),
    }
    where = f"{ti.dag_id}.{ti.task_id}"
    if event == TASK_FAILED:
        error = context.get("exception")
        payload["error"] = f"{type(error).__name__}: {error}" if error else None
        payload["title"] = f"{where} failed" + (f": {error}" if error else "")
    elif event == APPROVAL_PENDING:
        task = context.get("task")
        payload["subject"] = getattr(task, "subject", None)
        payload["approval_url"] = _approval_url(context)
        payload["title"] = f"{where} waits for approval: {payload['subject'] or ''}".strip()
    else:
        result = ti.xcom_pull(task_ids=ti.task_id) or {}
        aliases = result.get("aliases") or {}
        payload["aliases"] = aliases
        payload["decision_record"] = result.get("decision_record")
        champion = aliases.get("champion")
        name = payload["model"] or usecase
        payload["title"] = (
            f"{name} v{champion} promoted to champion"
            if event == PROMOTED
            else f"{name} rolled back: v{champion} is champion again"
        )
    return payload


class WebhookNotifier(BaseNotifier):
    """POSTs the event as JSON to ``url``, giving up after ``timeout`` seconds."""

    def __init__(self, event: Event, url: str, timeout: float) -> None:
        super().__init__()
        self.event = event
        self.url = url
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        body = json.dumps(event_payload(self.event, context), default=str).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            # HTTP errors, refusals, broken answers, timeouts and a malformed URL alike.
            self.log.warning("%s notification not delivered to the webhook: %s", self.event, exc)


def email_notifier(event: Event, context: Any, to: list[str]) -> BaseNotifier:
    """The SMTP provider's notifier, subject and body written from the event (its Jinja
    templates would be rendered again, and an error message may hold braces)."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    payload = event_payload(event, context)
    rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
        for key, value in payload.items()
        if value not in (None, "", {})
    )
    return SmtpNotifier(
        to=to,
        smtp_conn_id="smtp_default",
        subject=f"[mlops] {payload['title']}",
        html_content=f"<table>{rows}</table>",
    )


class PlatformNotifier(BaseNotifier):
    """Sends one kind of event to every target the settings name, as the callback runs."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def notify(self, context: Any) -> None:
        from mlops_pipeline.config import get_settings

        settings = get_settings()
        url = settings.notify_url.get_secret_value()
        if url:
            WebhookNotifier(self.event, url, settings.notify_timeout_seconds).notify(context)
        to = [address.strip() for address in settings.notify_email.split(",") if address.strip()]
        if to:
            try:
                email_notifier(self.event, context, to).notify(context)
            except Exception as exc:  # noqa: BLE001 - SMTP, connection and config errors alike
                self.log.warning("%s notification not e-mailed to %s: %s", self.event, to, exc)


def _model_name(usecase: str) -> str | None:
    from mlops_pipeline.config import get_settings

    try:
        return get_settings().for_usecase(usecase).spec.model_name
    except Exception:  # noqa: BLE001 - the event goes out even when its declaration is broken
        return None


def _task_url(ti: Any) -> str | None:
    return getattr(ti, "log_url", None)


def _approval_url(context: Mapping[str, Any]) -> str | None:
    from airflow.providers.standard.operators.hitl import HITLOperator

    try:
        return HITLOperator.generate_link_to_ui_from_context(context=context)  # type: ignore[arg-type]
    except ValueError:  # no [api] base_url, or not an approval task
        return None
