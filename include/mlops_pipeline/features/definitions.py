"""The Feast definitions of a use case, built from its declaration.

Entity -> Source -> FeatureViews -> on-demand views -> FeatureService, as Feast's template
writes them by hand; here every name, type, TTL and description comes from ``usecase.yaml``.
Training (``get_historical_features``) and serving (``get_online_features``) both go through
the declared feature service, so they see the same features.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import FunctionType
from typing import Any, cast

from mlops_pipeline.config import Settings
from mlops_pipeline.data.contract import Kind
from mlops_pipeline.features.on_demand import registry_source
from mlops_pipeline.usecases.loader import UseCase


@dataclass(frozen=True)
class Definitions:
    """The Feast objects of one use case."""

    entity: Any
    source: Any
    feature_views: list[Any]
    on_demand_feature_views: list[Any]
    feature_service: Any


def feast_type(kind: Kind | str) -> Any:
    """The Feast type of a contract column's kind (or an on-demand output's)."""
    from feast.types import Bool, Float64, Int64, String

    return {
        Kind.INT: Int64,
        Kind.FLOAT: Float64,
        Kind.CATEGORY: String,
        Kind.BOOL: Bool,
    }[Kind(kind)]


def build_definitions(settings: Settings) -> Definitions:
    """The Feast objects of ``settings.spec``, reading the use case's validated lake."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.data_format import ParquetFormat
    from feast.on_demand_feature_view import OnDemandFeatureView

    spec: UseCase = settings.spec
    tags = {"owner": spec.owner, "usecase": spec.name}

    # One entity, keyed as in the data contract (the key is an int column by validation).
    entity = Entity(
        name=spec.entity.name,
        join_keys=[spec.entity.key],
        value_type=ValueType.INT64,
        description=spec.entity.description,
        tags=tags,
    )

    # Only validated rows: the lake holds what passed the Great Expectations suite, one
    # Hive-style partition per cadence period; quarantined rows never reach Feast.
    source = FileSource(
        name=f"{spec.dataset}_source",
        path=str(settings.lake_dir / "date=*" / "*.parquet"),
        timestamp_field=spec.timestamp,
        file_format=ParquetFormat(),
        description=f"Validated {spec.cadence.value} partitions of {spec.dataset}.",
        tags=tags,
    )

    # One view per declared group: a group shares a TTL, how old a value may be and still be
    # served (slow-moving facts keep longer than recent behaviour).
    views = [
        FeatureView(
            name=name,
            entities=[entity],
            ttl=declared.ttl,
            schema=[
                Field(
                    name=column,
                    dtype=feast_type(spec.column(column).kind),
                    description=spec.column(column).description,
                )
                for column in declared.features
            ],
            source=source,
            online=True,
            description=declared.description,
            tags=tags,
        )
        for name, declared in spec.features.views.items()
    ]

    # Computed at request time from the views by the use case's own function (Python mode: no
    # pandas round trip on the serving path); the registry keeps a stub that calls it.
    on_demand = [
        OnDemandFeatureView(
            name=name,
            sources=cast("list[Any]", views),  # Feast wants list[FeatureView | ...]: invariant
            schema=[
                Field(name=output, dtype=feast_type(kind))
                for output, kind in declared.outputs.items()
            ],
            mode="python",
            udf=cast(FunctionType, spec.transform(declared.function)),  # a def in transforms.py
            udf_string=registry_source(spec, name),
            description=declared.description,
            tags=tags,
        )
        for name, declared in spec.features.on_demand.items()
    ]

    # Versioned: a model records the service it was trained on; changing features means a new
    # service name in the declaration.
    service = FeatureService(
        name=spec.features.service,
        features=[*views, *on_demand],
        description=spec.features.service_description,
        tags={**tags, "model": spec.model_name},
    )
    return Definitions(
        entity=entity,
        source=source,
        feature_views=views,
        on_demand_feature_views=on_demand,
        feature_service=service,
    )
