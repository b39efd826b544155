"""The Compose deploy target: restart the model-server container through the Docker provider.

There is no Docker engine on the test machine; the provider's hook and the Docker SDK talk to
``tests.fake_docker_engine`` over a real unix socket instead.
"""

from __future__ import annotations

import pytest

from mlops_pipeline.deployment import docker_target
from tests.fake_docker_engine import fake_docker_engine


def test_off_by_default(settings):
    assert not docker_target.configured(settings)
    with pytest.raises(docker_target.DeployTargetError, match="MLOPS_MODEL_SERVER_CONTAINER"):
        docker_target.restart_model_server(settings, "1")


def test_restarts_the_container_through_the_docker_hook(settings, tmp_path):
    with fake_docker_engine(tmp_path / "docker.sock", ["model-server"]) as engine:
        configured = settings.replace(model_server_container="model-server", docker_url=engine.url)
        before = engine.containers["model-server"]["State"]["StartedAt"]
        result = docker_target.restart_model_server(configured, "3")
    assert result.container == "model-server" and result.started_before == before
    assert result.started_after != before and result.serving is None
    restarts = [r for r in engine.requests if r[:2] == ("POST", "/containers/model-server/restart")]
    assert len(restarts) == 1
    assert restarts[0][2] == {"t": [str(docker_target.STOP_TIMEOUT_SECONDS)]}


def test_a_container_that_does_not_come_back_fails_the_task(settings, tmp_path):
    with fake_docker_engine(tmp_path / "docker.sock", ["model-server"]) as engine:
        engine.restart_succeeds = False
        configured = settings.replace(model_server_container="model-server", docker_url=engine.url)
        with pytest.raises(docker_target.DeployTargetError, match="not running"):
            docker_target.restart_model_server(configured, "3")


def test_an_unknown_container_is_an_error(settings, tmp_path):
    from docker.errors import NotFound

    with fake_docker_engine(tmp_path / "docker.sock", ["model-server"]) as engine:
        configured = settings.replace(model_server_container="nope", docker_url=engine.url)
        with pytest.raises(NotFound):
            docker_target.restart_model_server(configured, "3")


def test_deploy_target_errors_are_permanent():
    from mlops_pipeline.failures import PermanentFailure

    assert issubclass(docker_target.DeployTargetError, PermanentFailure)
