"""Which contract features belong to which Feast feature view (shared by the Feast repo and
the training code, so a model knows its inputs without importing Feast)."""

from __future__ import annotations

PROFILE_FEATURES: tuple[str, ...] = (
    "tenure_months",
    "plan",
    "region",
    "contract_type",
    "payment_method",
    "num_devices",
    "autopay",
    "paperless_billing",
)
ACTIVITY_FEATURES: tuple[str, ...] = (
    "monthly_charges",
    "avg_daily_usage_minutes",
    "support_tickets_30d",
    "payment_failures_90d",
    "days_since_last_login",
)
ON_DEMAND_FEATURES: tuple[str, ...] = ("charges_per_device", "tickets_per_tenure_year")
FEATURE_SERVICE = "churn_model_v1"
FEATURE_VIEWS: tuple[str, ...] = ("customer_profile", "customer_activity")
