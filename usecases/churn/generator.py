"""Demo data of the churn use case: one snapshot per customer per day, seeded.

Implements the generator protocol of ``mlops_pipeline.data.datagen``: the same seed always
gives the same customers (``population``), each day adds its own seeded variation
(``snapshot``), and the label is drawn from a logistic model of the observed features and a
latent satisfaction the model never sees (``label``), so it is learnable but honestly noisy.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

# The contract's value sets (usecase.yaml); the unit tests check generated days pass its suite.
PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")
CONTRACTS = ("month_to_month", "one_year", "two_year")
PAYMENT_METHODS = ("card", "bank_transfer", "invoice")

# Tenure is counted from here; days before it simply keep the sign-up tenure.
TENURE_EPOCH = dt.date(2025, 1, 1)
PLAN_PRICE = {"basic": 19.0, "standard": 45.0, "premium": 89.0}

# What the fault scenarios damage (see mlops_pipeline.data.datagen).
RENAMED = ("monthly_charges", "monthly_charge")
DROPPED = "days_since_last_login"
RETYPED = ("tenure_months", "months")
NULL_BURST = ("monthly_charges", "avg_daily_usage_minutes")
OUT_OF_RANGE_NUMBER = "monthly_charges"
OUT_OF_RANGE_CATEGORY = ("plan", "enterprise")
RESENT_CHANGE = "avg_daily_usage_minutes"


def population(rows: int, seed: int) -> pd.DataFrame:
    """Stable per-customer traits: the same seed and size give the same customers every day."""
    rng = np.random.default_rng([seed, 0])
    plan = rng.choice(PLANS, size=rows, p=[0.45, 0.38, 0.17])
    contract_type = rng.choice(CONTRACTS, size=rows, p=[0.55, 0.27, 0.18])
    autopay = rng.random(rows) < np.where(contract_type == "month_to_month", 0.45, 0.75)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, rows + 1, dtype=np.int64),
            "signup_tenure": rng.gamma(1.6, 14.0, size=rows),
            "plan": plan,
            "region": rng.choice(REGIONS, size=rows, p=[0.3, 0.25, 0.25, 0.2]),
            "contract_type": contract_type,
            "payment_method": rng.choice(PAYMENT_METHODS, size=rows, p=[0.6, 0.3, 0.1]),
            "autopay": autopay,
            "paperless_billing": rng.random(rows) < 0.62,
            "num_devices": 1 + rng.poisson(1.3, size=rows),
            # Latent traits the model never sees: they keep the label honestly noisy.
            "engagement": rng.normal(0.0, 1.0, size=rows),
            "satisfaction": rng.normal(0.0, 1.0, size=rows),
        }
    )


def snapshot(
    population: pd.DataFrame,
    start: dt.date,
    seed: int,
    covariate_drift: bool,
    length: dt.timedelta,
) -> pd.DataFrame:
    """Every customer's snapshot of the partition starting ``start`` (``length`` long)."""
    rows = len(population)
    rng = np.random.default_rng([seed, start.toordinal()])
    # By ordinal: ``start`` may be an hourly partition's datetime, which a date cannot subtract.
    months_since_epoch = max(start.toordinal() - TENURE_EPOCH.toordinal(), 0) / 30.44
    tenure = np.floor(population["signup_tenure"].to_numpy() + months_since_epoch)
    engagement = population["engagement"].to_numpy() + rng.normal(0, 0.35, size=rows)
    satisfaction = population["satisfaction"].to_numpy() + rng.normal(0, 0.35, size=rows)
    plan = population["plan"].to_numpy()
    contract_type = population["contract_type"].to_numpy().copy()
    devices = population["num_devices"].to_numpy()

    price = pd.Series(plan).map(PLAN_PRICE).to_numpy() + 4.0 * devices
    charges = price + rng.normal(0, 6.0, size=rows)
    usage = np.exp(4.6 + 0.45 * engagement + rng.normal(0, 0.3, size=rows))
    tickets_rate = np.exp(-0.9 - 0.7 * satisfaction)
    if covariate_drift:
        # A price rise and a usage slump, hitting month-to-month customers hardest.
        charges = charges * 1.25 + 8.0
        usage = usage * 0.6
        tickets_rate = tickets_rate * 1.8
        switch = (contract_type == "one_year") & (rng.random(rows) < 0.6)
        contract_type[switch] = "month_to_month"
    login_scale = np.exp(1.2 - 0.8 * engagement)
    failures_rate = np.where(population["autopay"].to_numpy(), 0.08, 0.35) * np.exp(
        -0.3 * satisfaction
    )
    seconds = rng.integers(0, int(length.total_seconds()), size=rows)
    timestamps = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame(
        {
            "customer_id": population["customer_id"].to_numpy(),
            "event_timestamp": timestamps,
            "tenure_months": np.clip(tenure, 0, 240).astype(np.int64),
            "plan": plan,
            "region": population["region"].to_numpy(),
            "contract_type": contract_type,
            "payment_method": population["payment_method"].to_numpy(),
            "monthly_charges": np.round(np.clip(charges, 5.0, 480.0), 2),
            "avg_daily_usage_minutes": np.round(np.clip(usage, 0.0, 1440.0), 1),
            "support_tickets_30d": np.minimum(rng.poisson(tickets_rate), 100).astype(np.int64),
            "payment_failures_90d": np.minimum(rng.poisson(failures_rate), 30).astype(np.int64),
            "days_since_last_login": np.minimum(
                np.floor(rng.exponential(login_scale)), 3650
            ).astype(np.int64),
            "num_devices": np.minimum(devices, 50).astype(np.int64),
            "autopay": population["autopay"].to_numpy(),
            "paperless_billing": population["paperless_billing"].to_numpy(),
            "_satisfaction": satisfaction,
        }
    )


def churn_logit(frame: pd.DataFrame, concept_drift: bool = False) -> np.ndarray:
    """Log-odds of churning within 30 days, from observed features and latent satisfaction."""
    month_to_month = (frame["contract_type"] == "month_to_month").to_numpy()
    two_year = (frame["contract_type"] == "two_year").to_numpy()
    tenure = frame["tenure_months"].to_numpy()
    charges = frame["monthly_charges"].to_numpy()
    usage = frame["avg_daily_usage_minutes"].to_numpy()
    logit = (
        -2.1
        + 0.9 * month_to_month
        - 0.8 * two_year
        - 0.5 * np.log1p(tenure / 6.0)
        + 0.012 * (charges - 50.0)
        + 0.45 * frame["support_tickets_30d"].to_numpy()
        + 0.55 * frame["payment_failures_90d"].to_numpy()
        + 0.18 * np.log1p(frame["days_since_last_login"].to_numpy()) ** 2
        - 0.45 * np.log(usage / 100.0 + 1e-3)
        - 0.3 * frame["autopay"].to_numpy()
        - 0.55 * frame["_satisfaction"].to_numpy()
    )
    if concept_drift:
        # Customers stop caring about contracts and tickets and start leaving over price alone:
        # the same features now mean something else.
        logit = (
            -2.3
            + 0.045 * (charges - 50.0)
            - 0.15 * np.log1p(tenure / 6.0)
            - 0.2 * frame["support_tickets_30d"].to_numpy()
            + 0.4 * np.log(usage / 100.0 + 1e-3)
            - 0.55 * frame["_satisfaction"].to_numpy()
        )
    return logit


def label(frame: pd.DataFrame, rng: np.random.Generator, concept_drift: bool) -> np.ndarray:
    """1 when the customer churns within 30 days."""
    probability = 1.0 / (1.0 + np.exp(-churn_logit(frame, concept_drift)))
    return (rng.random(len(frame)) < probability).astype(np.int64)
