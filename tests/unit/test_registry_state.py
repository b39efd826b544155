"""The marker that remembers which models a registry held (``deployment.registry_state``)."""

from __future__ import annotations

import json
import secrets

import pytest

from mlops_pipeline.deployment import registry_state
from mlops_pipeline.deployment.registry_state import RegistryMissing


def test_the_marker_keeps_no_credentials_and_only_grows(settings):
    password = secrets.token_hex(8)
    remote = settings.replace(
        mlflow_tracking_uri="https://ops:" + password + "@mlflow.example:5000/x"
    )
    registry_state.record_models(remote, ["b"])
    registry_state.record_models(remote, ["a", "b"])
    registry_state.record_models(settings, ["c"])
    text = registry_state.marker_path(settings).read_text()
    assert password not in text and "ops@" not in text
    assert json.loads(text) == {
        "https://mlflow.example:5000/x": ["a", "b"],
        settings.tracking_uri: ["c"],
    }
    assert registry_state.known_models(remote) == ["a", "b"]
    assert list(registry_state.marker_path(settings).parent.glob("*.tmp")) == []


def test_a_missing_embedded_file_is_refused_only_where_it_held_models(settings):
    database = registry_state.sqlite_file(settings.tracking_uri)
    assert database == settings.mlflow_dir / "mlflow.db" and not database.exists()
    registry_state.refuse_missing_store(settings)  # a first run: nothing was registered
    registry_state.record_models(settings.replace(mlflow_tracking_uri="http://h:5000"), ["m"])
    registry_state.refuse_missing_store(settings)  # another registry held the model
    registry_state.record_models(settings, ["m"])
    with pytest.raises(RegistryMissing, match="refusing to create an empty one"):
        registry_state.refuse_missing_store(settings)
    assert not database.exists()


def test_a_registry_is_refused_only_when_it_lists_none_of_its_models(settings):
    registry_state.record_models(settings, ["ours"])
    with pytest.raises(RegistryMissing, match=r"holds none of the models it held \(ours"):
        registry_state.refuse_emptied_registry(settings, ["theirs"])
    registry_state.refuse_emptied_registry(settings, ["ours", "theirs"])
    # A full page is a registry in use: the platform's models may be on a later page.
    others = [f"other_{i}" for i in range(registry_state.PAGE)]
    registry_state.refuse_emptied_registry(settings, others)
    assert "other_0" in registry_state.known_models(settings)
