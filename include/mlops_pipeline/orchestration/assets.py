"""The platform's Airflow Assets, defined once per use case: the DAG factory lists them in
producers' ``outlets`` and consumers' ``schedule``. One of the few modules that import Airflow.

Every use case has its own five assets, named ``<usecase>__<kind>``, so the events of one model
never trigger another's DAGs. Assets are named, not given URIs: a URI scheme makes Airflow look
up a provider's normalizer at parse time, and these assets are platform events, not storage
paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow.sdk import Asset

# Every task that moves a model alias runs in this pool; its single slot serializes alias writes
# across the deploy and rollback DAGs (of every use case: alias moves are rare and quick).
ALIAS_WRITES_POOL = "model_alias_writes"

SEPARATOR = "__"


@dataclass(frozen=True)
class UseCaseAssets:
    """The asset events of one use case's lifecycle, in the order they chain."""

    # Emitted by ingest when a partition's clean rows are in the lake; `extra` carries the
    # date, row and quarantine counts and the validation id.
    validated_data: Asset
    # Emitted by materialize once the online store serves the interval's values; `extra`
    # carries the partitions and the materialized interval.
    features_online: Asset
    # Emitted by monitor_drift when drift is real enough to retrain; `extra` carries the
    # reason and the figures behind it.
    retrain_requested: Asset
    # Emitted by train when a new version is registered with the `challenger` alias; `extra`
    # carries the model name, version and run id.
    challenger: Asset
    # Emitted by score when a partition's batch predictions are written; `extra` carries the
    # partition, the rows, the model name and version and the feature service.
    predictions: Asset

    def kind_of(self, name: str) -> str:
        """The kind (``features_online``, ...) of one of these assets, from its name."""
        for kind in KINDS:
            if getattr(self, kind).name == name:
                return kind
        raise KeyError(f"{name!r} is not an asset of this use case")


KINDS = ("validated_data", "features_online", "retrain_requested", "challenger", "predictions")
_GROUPS = {
    "validated_data": "data",
    "features_online": "features",
    "retrain_requested": "models",
    "challenger": "models",
    "predictions": "predictions",
}


def asset_name(usecase: str, kind: str) -> str:
    return f"{usecase}{SEPARATOR}{kind}"


def usecase_assets(usecase: str) -> UseCaseAssets:
    """The assets of ``usecase`` (equal objects on every call: Airflow matches by name)."""
    return UseCaseAssets(
        **{kind: Asset(name=asset_name(usecase, kind), group=_GROUPS[kind]) for kind in KINDS}
    )
