"""Demo data of the store demand use case: one row per store per day, seeded.

Implements the generator protocol of ``mlops_pipeline.data.datagen``. A store's profile
(format, city, size, age, parking, nearest competitor, a latent appeal) is fixed by the seed
(``population``); each day draws its prices, promotions, weather, holidays and footfall
(``snapshot``); units sold follow a log-linear demand model with a price elasticity, promotion
and holiday lifts and weather, times a latent daily shock the model never sees (``label``), so
the demand is learnable but honestly noisy.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

# The contract's value sets (usecase.yaml); the unit tests check generated days pass its suite.
FORMATS = ("hypermarket", "supermarket", "convenience", "discount")
CITY_TIERS = ("tier_1", "tier_2", "tier_3")

# Per format: typical floor area (m2), visitors per m2 per day, chance of a car park, and the
# format's price position against the chain's list prices.
AREA = {"hypermarket": 9000.0, "supermarket": 2200.0, "convenience": 180.0, "discount": 1100.0}
VISITORS_PER_SQM = {"hypermarket": 0.55, "supermarket": 0.9, "convenience": 4.0, "discount": 1.1}
PARKING = {"hypermarket": 0.97, "supermarket": 0.7, "convenience": 0.15, "discount": 0.8}
PRICE_POSITION = {"hypermarket": 0.97, "supermarket": 1.0, "convenience": 1.12, "discount": 0.88}
TIER_FOOTFALL = {"tier_1": 1.25, "tier_2": 1.0, "tier_3": 0.8}
# Units a visitor buys; holidays fill big baskets and empty commuter shops.
BASKET_UNITS = {"hypermarket": 1.8, "supermarket": 1.2, "convenience": 0.6, "discount": 1.5}
HOLIDAY_LIFT = {"hypermarket": 0.3, "supermarket": 0.15, "convenience": -0.35, "discount": 0.2}
# Public holidays (month, day): every store closes early or opens for the crowds.
PUBLIC_HOLIDAYS = {(1, 1), (4, 18), (4, 21), (5, 1), (8, 15), (11, 1), (12, 24), (12, 25), (12, 26)}

PRICE_ELASTICITY = -2.0
# After the concept drift shoppers compare prices far more and promotions lift less.
DRIFTED_PRICE_ELASTICITY = -6.0

# What the fault scenarios damage (see mlops_pipeline.data.datagen).
RENAMED = ("price_index", "price_idx")
DROPPED = "footfall_7d"
RETYPED = ("opened_years_ago", "years")
NULL_BURST = ("price_index", "temperature_c")
OUT_OF_RANGE_NUMBER = "floor_area_sqm"
OUT_OF_RANGE_CATEGORY = ("store_format", "pop_up")
RESENT_CHANGE = "temperature_c"


def population(rows: int, seed: int) -> pd.DataFrame:
    """Stable per-store traits: the same seed and size give the same stores every day."""
    rng = np.random.default_rng([seed, 0])
    store_format = rng.choice(FORMATS, size=rows, p=[0.12, 0.43, 0.33, 0.12])
    tier = rng.choice(CITY_TIERS, size=rows, p=[0.3, 0.45, 0.25])
    typical_area = pd.Series(store_format).map(AREA).to_numpy()
    area = np.clip(typical_area * np.exp(rng.normal(0.0, 0.3, size=rows)), 60.0, 29_000.0)
    parking = rng.random(rows) < pd.Series(store_format).map(PARKING).to_numpy()
    # A tenth of the stores have no competitor anyone has mapped: the distance is unknown.
    competitor = np.exp(rng.normal(np.log(1.5), 0.9, size=rows))
    competitor[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "store_id": np.arange(1, rows + 1, dtype=np.int64),
            "store_format": store_format,
            "city_tier": tier,
            "floor_area_sqm": np.round(area, 0),
            "opened_years": rng.gamma(2.0, 6.0, size=rows),
            "has_parking": parking,
            "competitor_distance": np.clip(competitor, 0.05, 95.0),
            # Climate: a store's mean temperature offset (north to south).
            "climate": rng.normal(0.0, 4.0, size=rows),
            # Latent appeal the model never sees (staff, layout, neighbourhood).
            "appeal": rng.normal(0.0, 1.0, size=rows),
        }
    )


def _base_visitors(population: pd.DataFrame) -> np.ndarray:
    per_sqm = population["store_format"].map(VISITORS_PER_SQM).to_numpy()
    tier = population["city_tier"].map(TIER_FOOTFALL).to_numpy()
    area = population["floor_area_sqm"].to_numpy()
    # Footfall grows less than floor area: a store twice the size does not draw twice the people.
    return per_sqm * tier * area**0.85 * 2.2 * np.exp(0.25 * population["appeal"].to_numpy())


def snapshot(
    population: pd.DataFrame,
    start: dt.date,
    seed: int,
    covariate_drift: bool,
    length: dt.timedelta,
) -> pd.DataFrame:
    """Every store's row of the partition starting ``start`` (``length`` long)."""
    rows = len(population)
    rng = np.random.default_rng([seed, start.toordinal()])
    store_format = population["store_format"].to_numpy()
    season = np.sin(2 * np.pi * (start.timetuple().tm_yday - 110) / 365.25)
    temperature = 11.0 + 10.0 * season + population["climate"].to_numpy()
    temperature = temperature + rng.normal(0.0, 3.0, size=rows)

    public = (start.month, start.day) in PUBLIC_HOLIDAYS
    holiday = np.full(rows, public) | (rng.random(rows) < 0.03)
    weekend = start.weekday() >= 5
    promo = rng.random(rows) < np.where(store_format == "hypermarket", 0.3, 0.18)
    position = pd.Series(store_format).map(PRICE_POSITION).to_numpy()
    price = position * np.exp(rng.normal(0.0, 0.07, size=rows)) * np.where(promo, 0.9, 1.0)

    visitors = _base_visitors(population) * (1.12 if weekend else 1.0)
    # The last 7 days' footfall: this store's usual visitors with a week of noise.
    footfall_7d = rng.poisson(7.0 * visitors * np.exp(rng.normal(0.0, 0.08, size=rows)))
    if covariate_drift:
        # A price rise across the chain and a footfall slump, worst in the big formats.
        price = price * 1.12 + 0.06
        slump = np.where(np.isin(store_format, ("hypermarket", "supermarket")), 0.65, 0.8)
        footfall_7d = rng.binomial(footfall_7d, slump)
        visitors = visitors * slump
    competitor = population["competitor_distance"].to_numpy()
    seconds = rng.integers(0, int(length.total_seconds()), size=rows)
    timestamps = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame(
        {
            "store_id": population["store_id"].to_numpy(),
            "event_timestamp": timestamps,
            "store_format": store_format,
            "city_tier": population["city_tier"].to_numpy(),
            "floor_area_sqm": population["floor_area_sqm"].to_numpy(),
            "opened_years_ago": np.floor(
                population["opened_years"].to_numpy() + max((start.year - 2025), 0)
            )
            .clip(0, 80)
            .astype(np.int64),
            "has_parking": population["has_parking"].to_numpy(),
            "price_index": np.round(np.clip(price, 0.5, 2.0), 3),
            "promo_active": promo,
            "competitor_distance_km": np.round(competitor, 2),
            "footfall_7d": np.minimum(footfall_7d, 2_000_000).astype(np.int64),
            "temperature_c": np.round(np.clip(temperature, -40.0, 50.0), 1),
            "holiday": holiday,
            "_visitors": visitors,
            "_appeal": population["appeal"].to_numpy(),
        }
    )


def log_demand(frame: pd.DataFrame, concept_drift: bool = False) -> np.ndarray:
    """Expected log units sold, from the observed signals and the latent appeal."""
    store_format = frame["store_format"]
    elasticity = DRIFTED_PRICE_ELASTICITY if concept_drift else PRICE_ELASTICITY
    promo_lift = 0.05 if concept_drift else 0.35
    competitor = frame["competitor_distance_km"].fillna(25.0).to_numpy()
    temperature = frame["temperature_c"].to_numpy()
    return (
        np.log(frame["_visitors"].to_numpy())
        + np.log(store_format.map(BASKET_UNITS).to_numpy())
        + elasticity * np.log(frame["price_index"].to_numpy())
        + promo_lift * frame["promo_active"].to_numpy()
        + frame["holiday"].to_numpy() * store_format.map(HOLIDAY_LIFT).to_numpy()
        + 0.12 * np.log1p(competitor)
        + 0.1 * frame["has_parking"].to_numpy()
        - 0.012 * np.abs(temperature - 17.0)
        - 0.04 * np.log1p(frame["opened_years_ago"].to_numpy())
        + 0.15 * frame["_appeal"].to_numpy()
    )


def label(frame: pd.DataFrame, rng: np.random.Generator, concept_drift: bool) -> np.ndarray:
    """Units sold: Poisson around the expected demand times a latent daily shock."""
    shock = rng.normal(0.0, 0.4, size=len(frame))
    expected = np.exp(log_demand(frame, concept_drift) + shock)
    return np.minimum(rng.poisson(expected), 1_000_000).astype(np.int64)
