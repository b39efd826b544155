"""Seeded generator of a realistic subscription-churn dataset, one snapshot per customer per day.

The same seed always gives the same customers; each day adds its own seeded variation, so any
day can be regenerated on its own. Scenarios reproduce what goes wrong with real daily feeds.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_pipeline.data import contract
from mlops_pipeline.data.storage import landing_file

# Tenure is counted from here; days before it simply keep the sign-up tenure.
TENURE_EPOCH = dt.date(2025, 1, 1)
PLAN_PRICE = {"basic": 19.0, "standard": 45.0, "premium": 89.0}


class Scenario(StrEnum):
    CLEAN = "clean"
    COVARIATE_DRIFT = "covariate_drift"
    CONCEPT_DRIFT = "concept_drift"
    SCHEMA_BREAK = "schema_break"
    NULL_BURST = "null_burst"
    OUT_OF_RANGE = "out_of_range"
    DUPLICATES = "duplicates"
    EMPTY = "empty"
    CORRUPT = "corrupt"


class SchemaBreak(StrEnum):
    RENAMED = "renamed"
    DROPPED = "dropped"
    RETYPED = "retyped"


# Shares of rows each row-level scenario damages. null_burst is far above the default 1%
# bad-row budget (the batch fails); out_of_range and duplicates stay below it (the batch passes
# and the damaged rows are quarantined).
NULL_BURST_FRACTION = 0.05
OUT_OF_RANGE_FRACTION = 0.004
DUPLICATE_FRACTION = 0.002

SCHEMA_BREAK_COLUMN = {
    SchemaBreak.RENAMED: "monthly_charges",
    SchemaBreak.DROPPED: "days_since_last_login",
    SchemaBreak.RETYPED: "tenure_months",
}


@dataclass(frozen=True)
class GeneratedDay:
    path: Path
    rows: int
    scenario: Scenario


def _population(rows: int, seed: int) -> pd.DataFrame:
    """Stable per-customer traits: the same seed and size give the same customers every day."""
    rng = np.random.default_rng([seed, 0])
    plan = rng.choice(contract.PLANS, size=rows, p=[0.45, 0.38, 0.17])
    contract_type = rng.choice(contract.CONTRACTS, size=rows, p=[0.55, 0.27, 0.18])
    autopay = rng.random(rows) < np.where(contract_type == "month_to_month", 0.45, 0.75)
    return pd.DataFrame(
        {
            contract.ENTITY_KEY: np.arange(1, rows + 1, dtype=np.int64),
            "signup_tenure": rng.gamma(1.6, 14.0, size=rows),
            "plan": plan,
            "region": rng.choice(contract.REGIONS, size=rows, p=[0.3, 0.25, 0.25, 0.2]),
            "contract_type": contract_type,
            "payment_method": rng.choice(contract.PAYMENT_METHODS, size=rows, p=[0.6, 0.3, 0.1]),
            "autopay": autopay,
            "paperless_billing": rng.random(rows) < 0.62,
            "num_devices": 1 + rng.poisson(1.3, size=rows),
            # Latent traits the model never sees: they keep the label honestly noisy.
            "engagement": rng.normal(0.0, 1.0, size=rows),
            "satisfaction": rng.normal(0.0, 1.0, size=rows),
        }
    )


def _day_snapshot(
    population: pd.DataFrame, day: dt.date, seed: int, covariate_shift: bool
) -> pd.DataFrame:
    rows = len(population)
    rng = np.random.default_rng([seed, day.toordinal()])
    months_since_epoch = max((day - TENURE_EPOCH).days, 0) / 30.44
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
    if covariate_shift:
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
    seconds = rng.integers(0, 86_400, size=rows)
    timestamps = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame(
        {
            contract.ENTITY_KEY: population[contract.ENTITY_KEY].to_numpy(),
            contract.EVENT_TIMESTAMP: timestamps,
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


def generate_frame(
    day: dt.date,
    rows: int = 20_000,
    seed: int = 7,
    scenario: Scenario | str = Scenario.CLEAN,
    schema_break: SchemaBreak | str | None = None,
) -> pd.DataFrame:
    """The day's snapshot table, with the scenario applied (``corrupt`` is a file-level fault and
    leaves the frame intact)."""
    scenario = Scenario(scenario)
    population = _population(rows, seed)
    frame = _day_snapshot(population, day, seed, scenario is Scenario.COVARIATE_DRIFT)
    rng = np.random.default_rng([seed, day.toordinal(), 1])
    probability = 1.0 / (1.0 + np.exp(-churn_logit(frame, scenario is Scenario.CONCEPT_DRIFT)))
    frame[contract.LABEL] = (rng.random(rows) < probability).astype(np.int64)
    frame = frame.drop(columns="_satisfaction")
    return _apply_scenario(frame, scenario, rng, schema_break)


def _sample(rng: np.random.Generator, rows: int, fraction: float) -> np.ndarray:
    count = max(1, round(rows * fraction)) if rows else 0
    return np.sort(rng.choice(rows, size=count, replace=False))


def _apply_scenario(
    frame: pd.DataFrame,
    scenario: Scenario,
    rng: np.random.Generator,
    schema_break: SchemaBreak | str | None,
) -> pd.DataFrame:
    rows = len(frame)
    if scenario is Scenario.EMPTY:
        return frame.iloc[0:0]
    if scenario is Scenario.SCHEMA_BREAK:
        kind = SchemaBreak(schema_break or SchemaBreak.RENAMED)
        name = SCHEMA_BREAK_COLUMN[kind]
        if kind is SchemaBreak.RENAMED:
            return frame.rename(columns={name: "monthly_charge"})
        if kind is SchemaBreak.DROPPED:
            return frame.drop(columns=name)
        frame[name] = frame[name].astype(str) + " months"
        return frame
    if scenario is Scenario.NULL_BURST:
        hit = _sample(rng, rows, NULL_BURST_FRACTION)
        frame.loc[hit, ["monthly_charges", "avg_daily_usage_minutes"]] = np.nan
        return frame
    if scenario is Scenario.OUT_OF_RANGE:
        hit = _sample(rng, rows, OUT_OF_RANGE_FRACTION)
        half = len(hit) // 2
        frame.loc[hit[:half], "monthly_charges"] = -frame.loc[hit[:half], "monthly_charges"]
        frame.loc[hit[half:], "plan"] = "enterprise"
        return frame
    if scenario is Scenario.DUPLICATES:
        # A re-sent slice of the feed: same keys, values updated in between.
        hit = _sample(rng, rows, DUPLICATE_FRACTION)
        resent = frame.iloc[hit].copy()
        resent["avg_daily_usage_minutes"] = resent["avg_daily_usage_minutes"] + 1.0
        return pd.concat([frame, resent], ignore_index=True)
    return frame


def write_landing_file(frame: pd.DataFrame, path: Path, corrupt: bool = False) -> None:
    """Write atomically so a reader never sees half a file (unless corruption is the point)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        out = frame.copy()
        out[contract.EVENT_TIMESTAMP] = out[contract.EVENT_TIMESTAMP].dt.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        out.to_csv(tmp, index=False)
    if corrupt:
        payload = tmp.read_bytes()
        # Cut mid-row and append binary noise: what a broken transfer leaves behind.
        tmp.write_bytes(payload[: len(payload) // 2] + b"\x00\xff\xfe garbage,,\x89PNG\r\n")
    os.replace(tmp, path)


def generate_day(
    home_landing_dir: Path,
    day: dt.date,
    rows: int = 20_000,
    seed: int = 7,
    scenario: Scenario | str = Scenario.CLEAN,
    schema_break: SchemaBreak | str | None = None,
    file_format: str = "csv",
) -> GeneratedDay:
    """Generate a day and write it into its landing partition."""
    scenario = Scenario(scenario)
    frame = generate_frame(day, rows, seed, scenario, schema_break)
    path = landing_file(home_landing_dir, day, file_format)
    write_landing_file(frame, path, corrupt=scenario is Scenario.CORRUPT)
    return GeneratedDay(path=path, rows=len(frame), scenario=scenario)
