"""A JSON-ready summary of a use case's state, shared by the CLI and the MLOps view.

``platform_status(settings)`` is the state of ``settings``' use case; ``usecases_status``
that of every declared one. Every name (model, metrics, label) comes from the declaration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.usecases.loader import declared_usecases
from mlops_pipeline.usecases.vocabulary import partition_key


def _partitions(root: Path, limit: int) -> list[dict[str, Any]]:
    rows = []
    for day in reversed(storage.partition_days(root)[-limit:]):
        manifest = storage.read_manifest(storage.partition_dir(root, day)) or {}
        rows.append(
            {
                "date": partition_key(day),
                "status": manifest.get("status"),
                "rows_valid": manifest.get("rows_valid"),
                "rows_quarantined": manifest.get("rows_quarantined"),
                "validation_id": manifest.get("validation_id"),
                "message": manifest.get("message"),
            }
        )
    return rows


def usecase_summary(settings: Settings) -> dict[str, Any]:
    """What the declaration says about the model, for people reading the state."""
    spec = settings.spec
    return {
        "name": spec.name,
        "description": spec.description,
        "owner": spec.owner,
        "task": spec.task.value,
        "model_name": spec.model_name,
        "entity_key": spec.entity.key,
        "label": spec.label,
        "cadence": spec.cadence.value,
        "dataset": spec.dataset,
        "score_field": spec.serving.score_field,
        "decision_field": spec.serving.decision_field,
        "primary_metric": spec.primary_metric,
        "metrics": [
            {"metric": gate.metric, "higher_is_better": gate.higher_is_better}
            for gate in spec.gate_metrics
        ],
    }


def platform_status(settings: Settings, limit: int = 7) -> dict[str, Any]:
    """The state of ``settings``' use case: partitions, features online, registered versions
    with their test metrics, decisions and drift nights (``limit`` newest of each)."""
    from mlops_pipeline.features.materialization import materialized_ranges

    summary = usecase_summary(settings)
    versions = _model_versions(settings, [m["metric"] for m in summary["metrics"]])
    return {
        "usecase": summary,
        "mlops_home": str(settings.home),
        "profile": settings.profile,
        "ingestion": {
            "validated_partitions": _partitions(settings.lake_dir, limit),
            "quarantined_partitions": _partitions(settings.quarantine_dir, limit),
            "data_docs": str(settings.data_docs_dir / "index.html"),
        },
        "features": {"materialized": materialized_ranges(settings)},
        "models": {
            "registered_model": summary["model_name"],
            "versions": versions,
            "aliases": {
                alias: next((v["version"] for v in versions if alias in v["aliases"]), None)
                for alias in ("champion", "challenger", "previous_champion")
            },
            "last_decisions": _decisions(settings),
        },
        "monitoring": {
            "nights": _nights(settings, limit),
            "reports": str(settings.drift_reports_dir),
        },
    }


def usecases_status(settings: Settings, limit: int = 7) -> dict[str, dict[str, Any]]:
    """``platform_status`` of every declared use case, by name (in the declared order)."""
    return {
        name: platform_status(settings.for_usecase(name), limit)
        for name in declared_usecases(settings.usecases_dir)
    }


def _model_versions(settings: Settings, metrics: list[str]) -> list[dict[str, Any]]:
    from mlops_pipeline.deployment.registry import registered_versions

    embedded_db = settings.mlflow_dir / "mlflow.db"
    if not settings.mlflow_tracking_uri and not embedded_db.exists():
        return []  # nothing trained yet; do not create an empty tracking store just to look
    versions = registered_versions(settings)
    for version in versions:
        # The declared metrics of every version, whatever the task (``test_<metric>``).
        found = version.get("test_metrics") or {}
        version["metrics"] = {m: found.get(m, version.get(f"test_{m}")) for m in metrics}
    return versions


def _decisions(settings: Settings) -> list[dict[str, Any]]:
    from mlops_pipeline.deployment.decisions import latest_decisions

    return latest_decisions(settings)


def _nights(settings: Settings, limit: int) -> list[dict[str, Any]]:
    from mlops_pipeline.monitoring.records import latest_nights

    return latest_nights(settings, limit)
