"""A JSON-ready summary of the platform's state, shared by the CLI and (later) the UI."""

from __future__ import annotations

from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage


def _partitions(root, limit: int) -> list[dict[str, Any]]:
    rows = []
    for day in reversed(storage.partition_days(root)[-limit:]):
        manifest = storage.read_manifest(storage.partition_dir(root, day)) or {}
        rows.append(
            {
                "date": day.isoformat(),
                "status": manifest.get("status"),
                "rows_valid": manifest.get("rows_valid"),
                "rows_quarantined": manifest.get("rows_quarantined"),
                "validation_id": manifest.get("validation_id"),
                "message": manifest.get("message"),
            }
        )
    return rows


def platform_status(settings: Settings, limit: int = 7) -> dict[str, Any]:
    from mlops_pipeline.features.materialization import materialized_ranges

    return {
        "mlops_home": str(settings.home),
        "profile": settings.profile,
        "ingestion": {
            "validated_partitions": _partitions(settings.lake_dir, limit),
            "quarantined_partitions": _partitions(settings.quarantine_dir, limit),
            "data_docs": str(settings.data_docs_dir / "index.html"),
        },
        "features": {"materialized": materialized_ranges(settings)},
        "models": {
            "registered_model": settings.registered_model_name,
            "versions": (versions := _model_versions(settings)),
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


def _model_versions(settings: Settings) -> list[dict[str, Any]]:
    from mlops_pipeline.deployment.registry import registered_versions

    embedded_db = settings.mlflow_dir / "mlflow.db"
    if not settings.mlflow_tracking_uri and not embedded_db.exists():
        return []  # nothing trained yet; do not create an empty tracking store just to look
    return registered_versions(settings)


def _decisions(settings: Settings) -> list[dict[str, Any]]:
    from mlops_pipeline.deployment.promotion import latest_decisions

    return latest_decisions(settings)


def _nights(settings: Settings, limit: int) -> list[dict[str, Any]]:
    from mlops_pipeline.monitoring.nightly import latest_nights

    return latest_nights(settings, limit)
