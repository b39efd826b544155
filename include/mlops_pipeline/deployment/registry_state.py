"""What the platform remembers about its model registry, so a lost registry is never mistaken
for a new one.

An empty registry looks exactly like a first deployment: training would register "v1", the
gates would find no champion and promote it over the model really serving. So the first time a
registry holds a model, its name is written to a marker under ``MLOPS_HOME`` (outside the
MLflow directory, so losing that directory keeps the marker), keyed by the tracking URI. Later:

- an embedded SQLite file that is missing where the marker lists models is never recreated;
- a registry (SQLite or a tracking server) holding none of the models the marker lists is
  refused.

Both raise ``RegistryMissing``. Accepting a fresh registry on purpose is deleting the marker
(the error names it); the next model registered writes it again.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlops_pipeline.config import Settings
from mlops_pipeline.failures import PermanentFailure

MARKER_FILE = "mlflow_registry_state.json"
# The registered models a connection lists; a full page is a registry in use, even when the
# platform's models are not on it.
PAGE = 100


class RegistryMissing(PermanentFailure):
    """The registry that held the platform's models is gone or empty: refusing to start a new
    one in its place (retrying cannot bring it back)."""


def marker_path(settings: Settings) -> Path:
    return settings.home / MARKER_FILE


def registry_key(tracking_uri: str) -> str:
    """The tracking URI without credentials (the marker is not a secret store)."""
    parts = urlsplit(tracking_uri)
    if parts.username is None and parts.password is None:
        return tracking_uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other store)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return Path(tracking_uri[len(prefix) :].split("?", 1)[0])


def known_models(settings: Settings) -> list[str]:
    """The models the marker says this registry held."""
    return list(_read(marker_path(settings)).get(registry_key(settings.tracking_uri), []))


def record_models(settings: Settings, names: list[str]) -> None:
    """Add ``names`` to what the marker says this registry holds (written only on change)."""
    path = marker_path(settings)
    state = _read(path)
    key = registry_key(settings.tracking_uri)
    held = set(state.get(key, []))
    if set(names) <= held:
        return
    state[key] = sorted(held | set(names))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: several tasks may connect at once, and a torn marker would read as "no models".
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as out:
        json.dump(state, out, indent=2, sort_keys=True)
    os.replace(out.name, path)


def refuse_missing_store(settings: Settings) -> None:
    """Before connecting: an embedded store file that held models must still exist (MLflow
    would silently create an empty one)."""
    database = sqlite_file(settings.tracking_uri)
    if database is None or database.exists():
        return
    held = known_models(settings)
    if held:
        raise RegistryMissing(
            f"the MLflow registry {database} is missing, but it held the models "
            f"{', '.join(held)} ({marker_path(settings)}); refusing to create an empty one, "
            f"where a new version would be promoted as the first model. {_recovery(settings)}"
        )


def refuse_emptied_registry(settings: Settings, present: list[str]) -> None:
    """After connecting: a registry holding none of the models it held is refused; the models
    ``present`` (a page of at most ``PAGE``) are remembered, so a registry that predates the
    marker is covered too."""
    held = known_models(settings)
    if held and len(present) < PAGE and not set(held) & set(present):
        raise RegistryMissing(
            f"the MLflow registry at {registry_key(settings.tracking_uri)} holds none of the "
            f"models it held ({', '.join(held)}, per {marker_path(settings)}): it was replaced "
            f"or emptied; refusing to use it, where a new version would be promoted as the "
            f"first model. {_recovery(settings)}"
        )
    if present:
        record_models(settings, present)


def _recovery(settings: Settings) -> str:
    return f"Restore the registry, or accept a fresh one deliberately: rm {marker_path(settings)}"


def _read(path: Path) -> dict[str, list[str]]:
    if not path.exists():
        return {}
    return json.loads(path.read_text())
