"""Deploy target for Docker Compose: restart the model-server container after a promotion.

The model server notices a moved ``champion`` alias by itself within
``MLOPS_SERVING_POLL_SECONDS``; on Compose, a use case's deploy DAG can also restart its
container through the Docker provider (``DockerHook``: the Docker SDK's ``APIClient`` on
``MLOPS_DOCKER_URL``), so the new champion is loaded by a fresh process at once. Off unless
``MLOPS_MODEL_SERVER_CONTAINER`` names the container. With ``MLOPS_SERVING_URL`` set, the
restart then waits for the server to serve the champion (the promotion's smoke test).

This module imports Airflow's Docker provider, but only inside ``restart_model_server``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.failures import PermanentFailure

# Seconds the container gets to stop gracefully before Docker kills it.
STOP_TIMEOUT_SECONDS = 20


class DeployTargetError(PermanentFailure):
    """The deploy target is not configured, or the container did not come back running after
    the restart (a retry would restart it again: a person has to look)."""


@dataclass
class Restart:
    container: str
    container_id: str
    started_before: str
    started_after: str
    serving: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def configured(settings: Settings) -> bool:
    return bool(settings.model_server_container)


def docker_client(settings: Settings) -> Any:
    """A ``docker.APIClient`` from the Docker provider's hook (no Airflow connection: the
    engine is local, nothing to log in to)."""
    from airflow.providers.docker.hooks.docker import DockerHook

    return DockerHook(docker_conn_id=None, base_url=settings.docker_url, timeout=60).api_client


def restart_container(api: Any, container: str) -> Restart:
    """Restart ``container`` and check that it runs again as a new process."""
    before = api.inspect_container(container)
    api.restart(container, timeout=STOP_TIMEOUT_SECONDS)
    after = api.inspect_container(container)
    state = after["State"]
    if not state.get("Running") or state.get("StartedAt") == before["State"].get("StartedAt"):
        raise DeployTargetError(
            f"container {container} is not running as a restarted process: "
            f"status={state.get('Status')} started={state.get('StartedAt')}"
        )
    return Restart(
        container=container,
        container_id=after["Id"],
        started_before=before["State"].get("StartedAt", ""),
        started_after=state["StartedAt"],
    )


def restart_model_server(settings: Settings, champion_version: str, api: Any = None) -> Restart:
    """Restart the configured model-server container; with ``MLOPS_SERVING_URL``, wait until
    it serves ``champion_version`` again."""
    from mlops_pipeline.deployment.smoke import smoke_test

    if not configured(settings):
        raise DeployTargetError("MLOPS_MODEL_SERVER_CONTAINER is not set")
    result = restart_container(
        api if api is not None else docker_client(settings), settings.model_server_container_name
    )
    if settings.serving_url:
        result.serving = smoke_test(settings, champion_version)
    return result
