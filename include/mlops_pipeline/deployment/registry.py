"""The MLflow side: tracking runs, the registered model and its aliases.

Aliases, never the deprecated stages: ``challenger`` (the newest trained version),
``champion`` (serving), ``previous_champion`` (rollback target). The experiments and the
registered model are named by the use case's declaration (``spec.training_experiment``,
``spec.model_name``).
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry_state
from mlops_pipeline.failures import PermanentFailure, TransientFailure

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)

# Tag keys every version carries: where it came from.
TAG_PREFIX = "mlops."

# MLflow's HTTP client retries a refused connection for minutes by default (seven retries,
# doubling from 2 s), inside each of the task's own retries: two budgets multiplied. The task's
# retry policy (``orchestration.retry_policy``) is the one budget, so the client fails at once
# and a request that hangs gives up after the timeout.
HTTP_CLIENT_BUDGET = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class TrackingUnavailable(TransientFailure, ConnectionError):
    """The tracking store did not answer or is busy (a refused or silent server, a locked
    SQLite database): transient, worth retrying with backoff."""


class RegistrationFailed(PermanentFailure):
    """The registry reports that a model version failed to register."""


class DeploymentError(PermanentFailure):
    """A deployment step could not complete as required (a missing version or alias, an
    alias that does not read back as written)."""


def client(settings: Settings) -> Any:
    """An MlflowClient on the configured tracking and registry URI, checked to answer and to
    still hold the models it held (``registry_state``)."""
    import mlflow
    from mlflow import MlflowClient

    from mlops_pipeline.platform.relocate import follow_move

    # A moved MLOPS_HOME: MLflow's artifact locations are absolute, rewritten before use.
    follow_move(settings)
    registry_state.refuse_missing_store(settings)
    if settings.tracking_uri.startswith("sqlite:"):
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    else:
        bound_http_retries()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    try:
        # Inside: on SQLite, constructing the client already reads the database.
        tracking = MlflowClient(settings.tracking_uri, settings.tracking_uri)
        present = [
            model.name
            for model in tracking.search_registered_models(max_results=registry_state.PAGE)
        ]
    except Exception as exc:  # MLflow wraps connection errors in several exception types
        where = registry_state.registry_key(settings.tracking_uri)
        database = registry_state.sqlite_file(settings.tracking_uri)
        raise _busy_store(exc, str(database or where)) or TrackingUnavailable(
            f"MLflow tracking at {where} is unreachable: {exc}"
        ) from exc
    registry_state.refuse_emptied_registry(settings, present)
    return tracking


def bound_http_retries(environ: MutableMapping[str, str] = os.environ) -> None:
    """Give MLflow's HTTP client the platform's budget unless the operator set one
    (``HTTP_CLIENT_BUDGET``)."""
    for name, value in HTTP_CLIENT_BUDGET.items():
        environ.setdefault(name, value)


def tracking_failure(exc: BaseException) -> TrackingUnavailable | None:
    """The retryable tracking error an error MLflow raised stands for, if it is one."""
    if not any(type(cause).__module__.startswith("mlflow") for cause in _chain(exc)):
        return None
    return _busy_store(exc)


def _busy_store(exc: BaseException, store: str = "") -> TrackingUnavailable | None:
    # SQLite gives up waiting for another connection's write lock (MLflow waits 20 s).
    if not any("database is locked" in str(cause) for cause in _chain(exc)):
        return None
    return TrackingUnavailable(
        f"MLflow's SQLite store {store}{' ' if store else ''}is locked by another process "
        "(database is locked): another task or the MLflow UI holds a write lock; retryable"
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def experiment_id(tracking: Any, settings: Settings, name: str) -> str:
    experiment = tracking.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if settings.tracking_uri.startswith("sqlite:"):
        # Embedded profile: artifacts beside the database, under MLOPS_HOME.
        location = (settings.mlflow_dir / "artifacts").as_uri()
    return tracking.create_experiment(name, artifact_location=location)


def ensure_registered_model(tracking: Any, settings: Settings) -> None:
    """Create the use case's registered model, described by its declaration, if missing, and
    remember that the registry holds it (``registry_state``)."""
    spec = settings.spec
    name = spec.model_name
    if tracking.search_registered_models(f"name='{name}'") == []:
        tracking.create_registered_model(
            name,
            description=spec.description,
            tags={f"{TAG_PREFIX}usecase": spec.name, f"{TAG_PREFIX}task": spec.task.value},
        )
    registry_state.record_models(settings, [name])


def wait_until_ready(tracking: Any, name: str, version: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        status = tracking.get_model_version(name, version).status
        if status == "READY":
            return
        if status == "FAILED_REGISTRATION":
            raise RegistrationFailed(f"model {name} version {version} failed to register")
        if time.monotonic() > deadline:
            raise TrackingUnavailable(
                f"model {name} version {version} is still {status} after {timeout_s:.0f} s"
            )
        time.sleep(0.5)


def version_for_alias(tracking: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return tracking.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def registered_versions(settings: Settings, limit: int = 10) -> list[dict[str, Any]]:
    """Newest versions with their aliases and test metrics (for ``status``): one
    ``test_<metric>`` per gated metric of the use case, and the threshold (None for a
    regressor)."""
    from mlflow.exceptions import MlflowException

    spec = settings.spec
    tracking = client(settings)
    name = spec.model_name
    try:
        model = tracking.get_registered_model(name)
    except MlflowException:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = tracking.search_model_versions(
        f"name='{name}'", order_by=["version_number DESC"], max_results=limit
    )
    run_metrics = _metrics_of_runs(tracking, [v.run_id for v in versions if v.run_id])
    rows = []
    for version in versions:
        metrics = run_metrics.get(version.run_id, {})
        rows.append(
            {
                "version": str(version.version),
                "aliases": sorted(aliases.get(str(version.version), [])),
                "run_id": version.run_id,
                "created": version.creation_timestamp,
                "data_window": version.tags.get(f"{TAG_PREFIX}data_window"),
                "trigger_reason": version.tags.get(f"{TAG_PREFIX}trigger_reason"),
                "primary_metric": spec.primary_metric,
                **{
                    f"test_{gate.metric}": metrics.get(f"test_{gate.metric}")
                    for gate in spec.gate_metrics
                },
                "threshold": metrics.get("threshold"),
            }
        )
    return rows


def _metrics_of_runs(tracking: Any, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """Each run's metrics from one search (a ``get_run`` per version is one query each);
    runs the search cannot see (a deleted experiment) are read one by one."""
    if not run_ids:
        return {}
    experiments = [e.experiment_id for e in tracking.search_experiments()]
    quoted = ", ".join(f"'{run_id}'" for run_id in run_ids)
    found = {
        run.info.run_id: run.data.metrics
        for run in tracking.search_runs(
            experiments, f"attributes.run_id IN ({quoted})", max_results=len(run_ids)
        )
    }
    for run_id in set(run_ids) - set(found):
        found[run_id] = tracking.get_run(run_id).data.metrics
    return found
