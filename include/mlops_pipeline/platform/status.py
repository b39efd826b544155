"""A JSON-ready summary of a use case's state, shared by the CLI and the MLOps view.

``platform_status(settings)`` is the state of ``settings``' use case; ``usecases_status``
that of every declared one. Every name (model, metrics, label) comes from the declaration.

On the embedded profile everything is read from files: the MLflow SQLite database with
``sqlite3`` and Feast's registry file with a few lines of protobuf decoding, because importing
MLflow and Feast (and opening MLflow's store, which checks its migrations) is what made
``status`` slow. The production profile asks MLflow and Feast themselves, imported only then.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
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
        "features": {"materialized": _materialized(settings)},
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
    from mlops_pipeline.deployment import registry_state

    embedded_db = settings.mlflow_dir / "mlflow.db"
    if not settings.mlflow_tracking_uri and not embedded_db.exists():
        return []  # nothing trained yet; do not create an empty tracking store just to look
    database = registry_state.sqlite_file(settings.tracking_uri)
    if database is not None and database.exists():
        versions = sqlite_versions(settings, database)
    else:
        from mlops_pipeline.deployment.registry import registered_versions

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


def sqlite_versions(settings: Settings, database: Path, limit: int = 10) -> list[dict[str, Any]]:
    """``registry.registered_versions`` read from MLflow's SQLite database directly (read
    only), in the same shape; the registry-state guard runs as it does behind MLflow's
    client, so a registry emptied under the platform is refused here too."""
    from mlops_pipeline.deployment import registry_state
    from mlops_pipeline.deployment.registry import TAG_PREFIX

    spec = settings.spec
    name = spec.model_name
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        present = [row[0] for row in db.execute("SELECT name FROM registered_models")]
        registry_state.refuse_emptied_registry(settings, present)
        rows = db.execute(
            # MLflow soft-deletes a version by moving it to this internal stage.
            "SELECT version, run_id, creation_time FROM model_versions WHERE name = ? "
            "AND COALESCE(current_stage, '') != 'Deleted_Internal' "
            "ORDER BY version DESC LIMIT ?",
            (name, limit),
        ).fetchall()
        aliases: dict[str, list[str]] = {}
        for alias, version in db.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = ?", (name,)
        ):
            aliases.setdefault(str(version), []).append(alias)
        tags: dict[str, dict[str, str]] = {}
        for version, key, value in db.execute(
            "SELECT version, key, value FROM model_version_tags WHERE name = ?", (name,)
        ):
            tags.setdefault(str(version), {})[key] = value
        run_ids = sorted({run_id for _, run_id, _ in rows if run_id})
        metrics: dict[str, dict[str, float]] = {}
        if run_ids:
            marks = ", ".join("?" for _ in run_ids)
            for run_id, key, value in db.execute(
                f"SELECT run_uuid, key, value FROM latest_metrics WHERE run_uuid IN ({marks})",
                run_ids,
            ):
                metrics.setdefault(run_id, {})[key] = value
    result = []
    for version, run_id, created in rows:
        number, found = str(version), metrics.get(run_id, {})
        version_tags = tags.get(number, {})
        result.append(
            {
                "version": number,
                "aliases": sorted(aliases.get(number, [])),
                "run_id": run_id,
                "created": created,
                "data_window": version_tags.get(f"{TAG_PREFIX}data_window"),
                "trigger_reason": version_tags.get(f"{TAG_PREFIX}trigger_reason"),
                "primary_metric": spec.primary_metric,
                **{
                    f"test_{gate.metric}": found.get(f"test_{gate.metric}")
                    for gate in spec.gate_metrics
                },
                "threshold": found.get("threshold"),
            }
        )
    return result


def _materialized(settings: Settings) -> dict[str, Any]:
    registry_file = settings.feast_dir / "registry.db"
    if settings.profile != "embedded":
        from mlops_pipeline.features.materialization import materialized_ranges

        return materialized_ranges(settings)
    if not registry_file.exists():
        return {}
    return registry_file_ranges(registry_file.read_bytes(), settings.feast_project)


# Field numbers of Feast's registry protos (feast/protos/feast/core/Registry.proto and
# FeatureView.proto): Registry.feature_views, FeatureView.spec/.meta, FeatureViewSpec.name/
# .project, FeatureViewMeta.materialization_intervals, MaterializationInterval.start/end_time,
# google.protobuf.Timestamp.seconds/.nanos.
_REGISTRY_FEATURE_VIEWS = 6
_VIEW_SPEC, _VIEW_META = 1, 2
_SPEC_NAME, _SPEC_PROJECT = 1, 2
_META_INTERVALS = 3
_INTERVAL_START, _INTERVAL_END = 1, 2
_SECONDS, _NANOS = 1, 2


def registry_file_ranges(data: bytes, project: str) -> dict[str, Any]:
    """``materialization.materialized_ranges`` from the bytes of a Feast registry file, for the
    feature views of ``project``, without importing Feast."""
    ranges: dict[str, Any] = {}
    for view in _fields(data).get(_REGISTRY_FEATURE_VIEWS, []):
        parts = _fields(view)
        spec = _fields(_one(parts, _VIEW_SPEC))
        if _one(spec, _SPEC_PROJECT).decode() != project:
            continue
        intervals = [
            (_timestamp(_one(i, _INTERVAL_START)), _timestamp(_one(i, _INTERVAL_END)))
            for i in map(_fields, _fields(_one(parts, _VIEW_META)).get(_META_INTERVALS, []))
        ]
        ranges[_one(spec, _SPEC_NAME).decode()] = {
            "from": min(s for s, _ in intervals).isoformat() if intervals else None,
            "to": max(e for _, e in intervals).isoformat() if intervals else None,
            "intervals": len(intervals),
        }
    return ranges


def _fields(data: bytes) -> dict[int, list[Any]]:
    """A protobuf message's fields by number: varints as ints, length-delimited as bytes."""
    fields: dict[int, list[Any]] = {}
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            size, position = _varint(data, position)
            value, position = data[position : position + size], position + size
        elif wire in (1, 5):  # fixed 64 / 32 bits: not read here, skipped
            size = 8 if wire == 1 else 4
            value, position = data[position : position + size], position + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _one(fields: dict[int, list[Any]], number: int) -> Any:
    """A singular field (the last one wins, as in protobuf); empty bytes when unset."""
    return fields.get(number, [b""])[-1]


def _timestamp(message: bytes) -> dt.datetime:
    parts = _fields(message)
    seconds, nanos = _one(parts, _SECONDS) or 0, _one(parts, _NANOS) or 0
    return dt.datetime.fromtimestamp(seconds, dt.UTC) + dt.timedelta(microseconds=nanos // 1000)
