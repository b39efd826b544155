"""Open a use case's Feast store for the active profile and register its definitions.

The YAML files in ``feature_repo/`` are the platform's description of each profile; their
``${VARS}`` are filled here from the settings, so Feast and the rest of the platform cannot
disagree about where state lives. Each use case is its own Feast project
(``settings.feast_project``): embedded, with its own registry file and SQLite online store under
``settings.feast_dir``; in production, one SQL registry and one Redis shared by every use case,
kept apart by project.
"""

from __future__ import annotations

import hashlib
import os
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings

PROFILE_YAML = {
    "embedded": "feature_store.yaml",
    "production": "feature_store.production.yaml",
}


def feast_variables(settings: Settings) -> dict[str, str]:
    return {
        "MLOPS_FEAST_PROJECT": settings.feast_project,
        "MLOPS_FEAST_DIR": str(settings.feast_dir),
        "MLOPS_FEAST_REGISTRY_URL": settings.feast_registry_url.get_secret_value(),
        "MLOPS_REDIS_CONNECTION": settings.redis_connection.get_secret_value(),
    }


def repo_config(settings: Settings) -> Any:
    import yaml
    from feast.repo_config import RepoConfig

    text = (settings.feature_repo / PROFILE_YAML[settings.profile]).read_text()
    # Template.substitute fails loudly on a variable nobody set, unlike os.path.expandvars.
    values = yaml.safe_load(
        string.Template(text).substitute({**os.environ, **feast_variables(settings)})
    )
    if settings.profile == "embedded":
        settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(repo_path=settings.feature_repo, **values)


def open_store(settings: Settings) -> Any:
    from feast import FeatureStore

    from mlops_pipeline.platform.relocate import follow_move

    # A moved MLOPS_HOME: the registry's file sources name the lake by its absolute path.
    follow_move(settings)
    return FeatureStore(repo_path=str(settings.feature_repo), config=repo_config(settings))


def load_definitions(settings: Settings) -> Any:
    """The Feast objects of ``settings.spec`` (``features.definitions``), as Feast's
    ``RepoContents``: built from the declaration for exactly these settings."""
    from feast.repo_contents import RepoContents

    from mlops_pipeline.features.definitions import build_definitions

    built = build_definitions(settings)
    return RepoContents(
        projects=[],
        data_sources=[built.source],
        entities=[built.entity],
        feature_views=list(built.feature_views),
        feature_services=[built.feature_service],
        on_demand_feature_views=list(built.on_demand_feature_views),
        stream_feature_views=[],
        label_views=[],
        permissions=[],
    )


FINGERPRINT_TAG = "mlops_definitions_fingerprint"


@dataclass
class Registration:
    applied: bool
    fingerprint: str
    previous_fingerprint: str | None = None
    objects: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "fingerprint": self.fingerprint,
            "previous_fingerprint": self.previous_fingerprint,
            "objects": self.objects,
        }


def _objects(contents: Any) -> list[Any]:
    return [
        *contents.entities,
        *contents.data_sources,
        *contents.feature_views,
        *contents.on_demand_feature_views,
        *contents.feature_services,
    ]


def definitions_fingerprint(contents: Any) -> str:
    """A digest of the definitions' specs as written (no registry metadata such as
    materialization intervals, no timestamps), so it changes exactly when a definition does."""
    digest = hashlib.sha256()
    for obj in sorted(_objects(contents), key=lambda o: (type(o).__name__, o.name)):
        proto = obj.to_proto()
        spec = proto.spec if "spec" in proto.DESCRIPTOR.fields_by_name else proto
        _clear_timestamps(spec)
        digest.update(type(obj).__name__.encode())
        digest.update(spec.SerializeToString(deterministic=True))
    return digest.hexdigest()


def _clear_timestamps(message: Any) -> None:
    """Drop every protobuf Timestamp (creation times) from a message tree, in place."""
    for descriptor, value in list(message.ListFields()):
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.full_name == "google.protobuf.Timestamp":
            message.ClearField(descriptor.name)
        elif descriptor.is_repeated:
            items = value.values() if hasattr(value, "values") else value
            for item in items:
                if hasattr(item, "ListFields"):
                    _clear_timestamps(item)
        else:
            _clear_timestamps(value)


def _registered_fingerprint(store: Any, project: str) -> str | None:
    from feast.errors import ProjectObjectNotFoundException

    try:
        return store.registry.get_project(project, allow_cache=False).tags.get(FINGERPRINT_TAG)
    except ProjectObjectNotFoundException:
        return None


def register_definitions(settings: Settings) -> Registration:
    """Apply the use case's definitions only when they differ from what was last applied.

    Re-applying is not free: an updated feature view loses its materialization intervals, and
    with them incremental state. The fingerprint of the applied definitions is kept as a tag of
    the Feast project, and nothing is applied while it matches.
    """
    from feast.project import Project

    store = open_store(settings)
    contents = load_definitions(settings)
    fingerprint = definitions_fingerprint(contents)
    previous = _registered_fingerprint(store, settings.feast_project)
    if previous == fingerprint:
        return Registration(applied=False, fingerprint=fingerprint, previous_fingerprint=previous)
    declared = {(type(o).__name__, o.name) for o in _objects(contents)}
    stale = [
        obj
        for obj in [
            *store.list_feature_services(),
            *store.list_on_demand_feature_views(),
            *store.list_feature_views(),
        ]
        if (type(obj).__name__, obj.name) not in declared
    ]
    project = Project(name=settings.feast_project, tags={FINGERPRINT_TAG: fingerprint})
    store.apply([project, *_objects(contents)], objects_to_delete=stale, partial=False)
    return Registration(
        applied=True,
        fingerprint=fingerprint,
        previous_fingerprint=previous,
        objects=sorted(f"{kind}:{name}" for kind, name in declared),
    )


def follow_home_move(settings: Settings, old_home: Path, rewrite: Callable[[str], str]) -> int:
    """After the embedded state moved from ``old_home`` to ``settings.home``: rewrite the paths
    the use case's registry file names, and carry the definitions' fingerprint over when only
    the home changed, so the move re-applies nothing (an update would drop the feature views'
    materialization intervals, which batch scoring's readiness reads). Returns how many values
    were rewritten.

    The file sources stay absolute: Feast's DuckDB offline store reads a Parquet source's path
    as given, so a relative one would be read from the working directory."""
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    registry_file = settings.feast_dir / "registry.db"
    if settings.profile != "embedded" or not registry_file.exists():
        return 0
    registry = RegistryProto()
    registry.ParseFromString(registry_file.read_bytes())
    rewritten = _rewrite_strings(registry, rewrite) + _rewrite_version_history(registry, rewrite)
    before = definitions_fingerprint(load_definitions(settings.replace(home=old_home)))
    after = definitions_fingerprint(load_definitions(settings))
    for project in registry.projects:
        tags = project.spec.tags
        if project.spec.name == settings.feast_project and tags.get(FINGERPRINT_TAG) == before:
            tags[FINGERPRINT_TAG] = after
    with tempfile.NamedTemporaryFile(dir=registry_file.parent, delete=False) as out:
        out.write(registry.SerializeToString())
    os.chmod(out.name, registry_file.stat().st_mode & 0o777)
    os.replace(out.name, registry_file)
    return rewritten


def _rewrite_version_history(registry: Any, rewrite: Callable[[str], str]) -> int:
    """Feast keeps each feature view's past versions as serialized protos (bytes a string
    rewrite cannot reach): decoded by their recorded type, as Feast's registry reads them,
    rewritten and encoded again."""
    from feast.protos.feast.core.FeatureView_pb2 import FeatureView
    from feast.protos.feast.core.LabelView_pb2 import LabelView
    from feast.protos.feast.core.OnDemandFeatureView_pb2 import OnDemandFeatureView
    from feast.protos.feast.core.StreamFeatureView_pb2 import StreamFeatureView

    kinds: dict[str, Any] = {
        "feature_view": FeatureView,
        "stream_feature_view": StreamFeatureView,
        "on_demand_feature_view": OnDemandFeatureView,
        "label_view": LabelView,
    }
    changed = 0
    for record in registry.feature_view_version_history.records:
        kind = kinds.get(record.feature_view_type)
        if kind is None:
            continue
        embedded = kind.FromString(record.feature_view_proto)
        count = _rewrite_strings(embedded, rewrite)
        if count:
            record.feature_view_proto = embedded.SerializeToString()
            changed += count
    return changed


def _rewrite_strings(message: Any, rewrite: Callable[[str], str]) -> int:
    """Apply ``rewrite`` to every string of a protobuf message tree, in place; returns how many
    changed."""
    changed = 0

    def moved(text: str) -> str:
        nonlocal changed
        new = rewrite(text)
        changed += new != text
        return new

    for descriptor, value in list(message.ListFields()):
        if descriptor.type == descriptor.TYPE_STRING:
            if descriptor.is_repeated:
                value[:] = [moved(item) for item in value]
            else:
                setattr(message, descriptor.name, moved(value))
        elif descriptor.message_type is not None:
            if descriptor.message_type.GetOptions().map_entry:
                if descriptor.message_type.fields_by_name["value"].message_type is None:
                    for key in list(value):
                        if isinstance(value[key], str):
                            value[key] = moved(value[key])
                else:
                    for key in value:
                        changed += _rewrite_strings(value[key], rewrite)
            elif descriptor.is_repeated:
                for item in value:
                    changed += _rewrite_strings(item, rewrite)
            else:
                changed += _rewrite_strings(value, rewrite)
    return changed
