"""The data contract of the daily ``customer_activity`` batch.

One place says what a valid row is; the generator, the Great Expectations suite and the Feast
definitions are all derived from it, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    INT = "int"
    FLOAT = "float"
    CATEGORY = "category"
    BOOL = "bool"
    TIMESTAMP = "timestamp"


# pandas dtype names accepted for each kind, as Great Expectations reports them. Integers are
# valid floats: a CSV day whose charges happen to be whole numbers must not break the schema.
PANDAS_TYPES: dict[Kind, tuple[str, ...]] = {
    Kind.INT: ("int64", "int32", "Int64", "Int32"),
    Kind.FLOAT: ("float64", "float32", "Float64", "int64", "int32", "Int64"),
    Kind.CATEGORY: ("object", "string", "str"),
    Kind.BOOL: ("bool", "boolean"),
    Kind.TIMESTAMP: (
        "datetime64[ns, UTC]",
        "datetime64[us, UTC]",
        "datetime64[ms, UTC]",
        "datetime64[s, UTC]",
    ),
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[str, ...] | None = None


ENTITY_KEY = "customer_id"
EVENT_TIMESTAMP = "event_timestamp"
LABEL = "churned"

PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")
CONTRACTS = ("month_to_month", "one_year", "two_year")
PAYMENT_METHODS = ("card", "bank_transfer", "invoice")

COLUMNS: tuple[Column, ...] = (
    Column(ENTITY_KEY, Kind.INT, "Stable customer identifier.", minimum=1),
    Column(EVENT_TIMESTAMP, Kind.TIMESTAMP, "When the daily snapshot was taken (UTC)."),
    Column("tenure_months", Kind.INT, "Months since sign-up.", minimum=0, maximum=240),
    Column("plan", Kind.CATEGORY, "Subscription plan.", values=PLANS),
    Column("region", Kind.CATEGORY, "Sales region.", values=REGIONS),
    Column("contract_type", Kind.CATEGORY, "Commitment length.", values=CONTRACTS),
    Column("payment_method", Kind.CATEGORY, "How the customer pays.", values=PAYMENT_METHODS),
    Column("monthly_charges", Kind.FLOAT, "Current monthly bill.", minimum=0, maximum=500),
    Column(
        "avg_daily_usage_minutes",
        Kind.FLOAT,
        "Usage over the last 7 days.",
        minimum=0,
        maximum=1440,
    ),
    Column("support_tickets_30d", Kind.INT, "Tickets opened in 30 days.", minimum=0, maximum=100),
    Column("payment_failures_90d", Kind.INT, "Failed payments in 90 days.", minimum=0, maximum=30),
    Column(
        "days_since_last_login", Kind.INT, "Days since the last login.", minimum=0, maximum=3650
    ),
    Column("num_devices", Kind.INT, "Devices registered.", minimum=1, maximum=50),
    Column("autopay", Kind.BOOL, "Automatic payment enabled."),
    Column("paperless_billing", Kind.BOOL, "Paperless billing enabled."),
    Column(
        LABEL,
        Kind.INT,
        "1 when the customer churned within 30 days.",
        values=None,
        minimum=0,
        maximum=1,
    ),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
FEATURE_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.name not in (ENTITY_KEY, EVENT_TIMESTAMP, LABEL)
)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind is Kind.CATEGORY)
NUMERIC_FEATURES: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.name in FEATURE_COLUMNS and c.kind in (Kind.INT, Kind.FLOAT)
)
BOOLEAN_FEATURES: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind is Kind.BOOL)


def column(name: str) -> Column:
    for col in COLUMNS:
        if col.name == name:
            return col
    raise KeyError(name)
