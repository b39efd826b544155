"""Feast definitions of the churn model's features.

Entity -> Source -> FeatureViews -> on-demand view -> FeatureService, in the style of Feast's
own template. Training (``get_historical_features``) and serving (``get_online_features``)
both go through the ``churn_model_v1`` feature service, so they see the same features.
"""

from datetime import timedelta
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float64, Int64, String

from mlops_pipeline.config import get_settings
from mlops_pipeline.data import contract
from mlops_pipeline.features.groups import ACTIVITY_FEATURES, PROFILE_FEATURES

_FEAST_TYPES = {
    contract.Kind.INT: Int64,
    contract.Kind.FLOAT: Float64,
    contract.Kind.CATEGORY: String,
    contract.Kind.BOOL: Bool,
}


def _fields(names: tuple[str, ...]) -> list[Field]:
    return [
        Field(
            name=name,
            dtype=_FEAST_TYPES[contract.column(name).kind],
            description=contract.column(name).description,
        )
        for name in names
    ]


# One customer, keyed as in the data contract.
customer = Entity(
    name="customer",
    join_keys=[contract.ENTITY_KEY],
    value_type=ValueType.INT64,
    description="A subscriber, identified by customer_id.",
)

# Only validated rows: the lake holds what passed the Great Expectations suite, one Hive-style
# partition per day; quarantined rows never reach Feast.
customer_activity_source = FileSource(
    name="customer_activity_source",
    path=str(get_settings().lake_dir / "date=*" / "*.parquet"),
    timestamp_field=contract.EVENT_TIMESTAMP,
    file_format=ParquetFormat(),
    description="Validated daily customer snapshots.",
)

# Slow-moving account facts: a month-old snapshot is still a fair description of a customer.
customer_profile_fv = FeatureView(
    name="customer_profile",
    entities=[customer],
    ttl=timedelta(days=35),
    schema=_fields(PROFILE_FEATURES),
    source=customer_activity_source,
    online=True,
    tags={"owner": "data-platform"},
)

# Behaviour over the last days: two days without a snapshot means we no longer know it.
customer_activity_fv = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=timedelta(days=2),
    schema=_fields(ACTIVITY_FEATURES),
    source=customer_activity_source,
    online=True,
    tags={"owner": "data-platform"},
)


# Ratios computed at request time from the two views, identically for training and serving.
# Python mode: no pandas round trip on the serving path.
@on_demand_feature_view(
    sources=[customer_profile_fv, customer_activity_fv],
    schema=[
        Field(name="charges_per_device", dtype=Float64),
        Field(name="tickets_per_tenure_year", dtype=Float64),
    ],
    mode="python",
)
def customer_ratios(inputs: dict[str, Any]) -> dict[str, Any]:
    charges, devices = inputs["monthly_charges"], inputs["num_devices"]
    tickets, tenure = inputs["support_tickets_30d"], inputs["tenure_months"]
    return {
        "charges_per_device": [
            c / d if c is not None and d else None for c, d in zip(charges, devices, strict=True)
        ],
        "tickets_per_tenure_year": [
            t * 12.0 / (m + 1) if t is not None and m is not None else None
            for t, m in zip(tickets, tenure, strict=True)
        ],
    }


# Versioned: a model records the service it was trained on; changing features means v2.
churn_model_v1 = FeatureService(
    name="churn_model_v1",
    features=[customer_profile_fv, customer_activity_fv, customer_ratios],
    description="Features of the churn classifier, version 1.",
    tags={"model": "churn-classifier", "version": "1"},
)
