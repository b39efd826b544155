"""Decision records: every promotion, rejection and rollback, pass or fail, kept under the use
case's ``settings.decisions_dir`` (JSON and Markdown), on the challenger's run, and as tags on
the version decided on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.deployment.records import DecisionRecord, Evaluation, decision_markdown

# The run's artifact folder of decision records.
DECISIONS_ARTIFACTS = "decisions"


def decision_record(
    action: str,
    outcome: str,
    model_name: str,
    version: str | None,
    evaluation: Evaluation | None = None,
    reasons: list[str] | None = None,
    aliases: dict[str, Any] | None = None,
    decided_by: str = "gates",
    airflow: dict[str, str] | None = None,
    smoke_test: dict[str, Any] | None = None,
) -> DecisionRecord:
    """A record decided now."""
    return DecisionRecord(
        action=action,
        outcome=outcome,
        model_name=model_name,
        version=version,
        decided_by=decided_by,
        evaluation=evaluation,
        reasons=reasons or [],
        aliases=aliases or {},
        airflow=airflow or {},
        smoke_test=smoke_test,
    )


def write_decision_record(
    settings: Settings, record: DecisionRecord, attach_to_run: str | None
) -> Path:
    """Keep the record under the use case's ``settings.decisions_dir`` (JSON and Markdown) and
    log both on ``attach_to_run``."""
    folder = settings.decisions_dir
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{record.file_stem}.json"
    markdown_path = json_path.with_suffix(".md")
    payload = record.model_dump(mode="json")
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    markdown_path.write_text(decision_markdown(record))
    if attach_to_run:
        tracking = registry.client(settings)
        tracking.log_artifact(attach_to_run, str(json_path), DECISIONS_ARTIFACTS)
        tracking.log_artifact(attach_to_run, str(markdown_path), DECISIONS_ARTIFACTS)
    return json_path


def read_decisions(settings: Settings, limit: int = 5) -> list[tuple[Path, DecisionRecord]]:
    """The newest decision records, newest first, with their JSON files."""
    folder = settings.decisions_dir
    if not folder.exists():
        return []
    paths = sorted(folder.glob("*.json"))[-limit:]
    return [(p, DecisionRecord.model_validate(json.loads(p.read_text()))) for p in reversed(paths)]


def decision_records(settings: Settings, limit: int = 5) -> list[tuple[Path, dict[str, Any]]]:
    """``read_decisions`` as JSON, for the views that render it."""
    return [(p, r.model_dump(mode="json")) for p, r in read_decisions(settings, limit)]


def latest_decisions(settings: Settings, limit: int = 5) -> list[dict[str, Any]]:
    """The newest decisions reduced for ``status``."""
    return [
        r.model_dump(mode="json", include={"decided_at", "action", "outcome", "version", "reasons"})
        for _, r in read_decisions(settings, limit)
    ]


def tag_decision(settings: Settings, version: str, outcome: str, reasons: list[str]) -> None:
    tracking = registry.client(settings)
    name = settings.spec.model_name
    tracking.set_model_version_tag(name, version, f"{registry.TAG_PREFIX}decision", outcome)
    tracking.set_model_version_tag(
        name, version, f"{registry.TAG_PREFIX}decision_reasons", "; ".join(reasons)[:4000]
    )


def record_decision(
    settings: Settings,
    evaluation: Evaluation,
    outcome: str,
    airflow: dict[str, str],
    reasons: list[str] | None = None,
    aliases: dict[str, Any] | None = None,
    decided_by: str = "gates",
    smoke_test: dict[str, Any] | None = None,
) -> Path:
    """Tag the challenger version with the outcome and write its decision record."""
    version = evaluation.challenger.version
    tag_decision(settings, version, outcome, reasons or [])
    record = decision_record(
        "promote",
        outcome,
        evaluation.model_name,
        version,
        evaluation,
        reasons=reasons,
        aliases=aliases,
        decided_by=decided_by,
        airflow=airflow,
        smoke_test=smoke_test,
    )
    return write_decision_record(settings, record, evaluation.challenger.run_id)
