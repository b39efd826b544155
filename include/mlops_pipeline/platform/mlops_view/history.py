"""What the charts and links need beyond ``platform_status``: the drift nights in full (every
column's score, the policy's threshold, the reasons behind each verdict) and each registered
version's lineage (its MLflow run and the Airflow run that trained it)."""

from __future__ import annotations

from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.platform.mlops_view.links import (
    airflow_run_url,
    mlflow_run_url,
    mlflow_version_url,
)


def no_retrain_reason(reasons: list[str] | None) -> str:
    """Why a night did not request a retrain, as the verdict's parenthesis."""
    return "; ".join(reasons or []) or "nothing flagged"


def drift_history(settings: Settings, nights: int) -> list[dict[str, Any]]:
    """The newest ``nights`` night records, oldest first (the charts' x axis)."""
    from mlops_pipeline.monitoring.records import read_record, recorded_nights
    from mlops_pipeline.usecases.vocabulary import partition_key

    rows = []
    for night in recorded_nights(settings)[-nights:]:
        record = read_record(settings, night)
        if record is None:  # removed since listed
            continue
        drift = record.drift
        rows.append(
            {
                "night": partition_key(night),
                "status": record.status,
                "drift_share": drift.drift_share if drift else None,
                "share_threshold": (
                    record.policy.drift_share_threshold
                    if record.policy
                    else settings.spec.drift.share_threshold
                ),
                "columns": {
                    name: {"score": column.score, "threshold": column.threshold}
                    for name, column in (drift.columns if drift else {}).items()
                },
                "retrain": record.decision.retrain,
                "reasons": record.decision.reasons,
                "airflow_url": airflow_run_url(record.airflow),
            }
        )
    return rows


def _version_tags(settings: Settings, limit: int) -> dict[str, dict[str, str]]:
    from mlops_pipeline.deployment import registry

    tracking = registry.client(settings)
    versions = tracking.search_model_versions(
        f"name='{settings.spec.model_name}'", order_by=["version_number DESC"], max_results=limit
    )
    return {str(v.version): dict(v.tags or {}) for v in versions}


def add_version_links(settings: Settings, models: dict[str, Any], mlflow_ui: str | None) -> None:
    """Each version's MLflow run and version pages and the Airflow run that trained it."""
    from mlops_pipeline.deployment.registry import TAG_PREFIX

    versions = models["versions"]
    tags = _version_tags(settings, len(versions)) if versions else {}
    for version in versions:
        found = tags.get(version["version"], {})
        airflow = {
            "dag_id": found.get(f"{TAG_PREFIX}airflow_dag_id", ""),
            "run_id": found.get(f"{TAG_PREFIX}airflow_run_id", ""),
        }
        version["airflow_url"] = airflow_run_url(airflow)
        version["mlflow_run_url"] = mlflow_run_url(mlflow_ui, version.get("run_id"))
        version["mlflow_version_url"] = mlflow_version_url(
            mlflow_ui, models["registered_model"], version["version"]
        )
