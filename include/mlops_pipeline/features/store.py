"""Open the Feast store for the active profile and register its definitions.

The YAML files in ``feature_repo/`` are the single description of each profile; their
``${VARS}`` are filled here from the platform settings, so Feast and the rest of the platform
cannot disagree about where state lives.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import string
from collections.abc import Generator
from dataclasses import dataclass, field
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

    return FeatureStore(repo_path=str(settings.feature_repo), config=repo_config(settings))


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Generator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_definitions(settings: Settings) -> Any:
    """The repo's Feast objects, imported afresh under ``settings``.

    The definitions read the platform settings from the environment, as they must when the
    ``feast`` CLI imports them; the settings are exported while they load so a programmatic
    caller gets definitions for its own settings. Feast's ``parse_repo`` caches modules, so it
    would return definitions built for other settings on a second call in one process.
    """
    from feast.data_source import DataSource
    from feast.entity import Entity
    from feast.feature_service import FeatureService
    from feast.feature_view import FeatureView
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.repo_contents import RepoContents

    contents = RepoContents(
        projects=[],
        data_sources=[],
        entities=[],
        feature_views=[],
        feature_services=[],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        permissions=[],
    )
    buckets = [
        (OnDemandFeatureView, contents.on_demand_feature_views),
        (FeatureView, contents.feature_views),
        (FeatureService, contents.feature_services),
        (Entity, contents.entities),
        (DataSource, contents.data_sources),
    ]
    for path in sorted(settings.feature_repo.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"feature_repo.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        with _environment(settings.to_env()):
            spec.loader.exec_module(module)
        for value in vars(module).values():
            for kind, bucket in buckets:
                if isinstance(value, kind) and not any(value is seen for seen in bucket):
                    bucket.append(value)
                    break
    return contents


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
    """Apply the repo's definitions only when they differ from what was last applied.

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
