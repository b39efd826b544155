"""Small hand-written use cases for the feature-store tests, and their validated lake.

Two views with different TTLs, a timestamp column not called ``event_timestamp``, a nullable
feature, and an on-demand function that calls a helper and an import of its own module (which
Feast's rebuild of a function from its source alone could not run).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage

D0 = dt.date(2025, 6, 2)
TRANSFORMS = '''"""On-demand features of a test shop."""

import math

BUSY_VISITS = 150


def _per(value, count):
    return value / count if value is not None and count else None


def shop_ratios(inputs):
    return {
        "price_per_visit": [_per(p, v) for p, v in zip(inputs["price"], inputs["visits"])],
        "log_visits": [math.log1p(v) if v is not None else None for v in inputs["visits"]],
        "busy": [bool(v is not None and v > BUSY_VISITS) for v in inputs["visits"]],
    }
'''


def declaration(name: str, service: str | None = None) -> dict:
    return {
        "name": name,
        "description": "A small use case for the feature-store tests.",
        "owner": "shop-team",
        "task": "regression",
        "entity": {"name": "shop", "key": "shop_id", "description": "A shop."},
        "timestamp": "observed_at",
        "label": "units",
        "dataset": f"{name}_days",
        "columns": {
            "shop_id": {"kind": "int", "min": 1},
            "observed_at": {"kind": "timestamp"},
            "region": {"kind": "category", "values": ["n", "s"], "description": "Where."},
            "size_m2": {"kind": "int", "min": 1, "description": "Floor space."},
            "visits": {"kind": "int", "min": 0, "description": "Visitors that day."},
            "price": {"kind": "float", "min": 0, "description": "Mean price."},
            "temperature": {"kind": "float", "nullable": True, "description": "Outside."},
            "promo": {"kind": "bool", "description": "A promotion ran."},
            "units": {"kind": "float", "min": 0, "description": "Units sold."},
        },
        "features": {
            "views": {
                "shop_facts": {
                    "ttl": "P10D",
                    "features": ["region", "size_m2"],
                    "description": "Slow-moving facts.",
                },
                "shop_day": {
                    "ttl": "P1D",
                    "features": ["visits", "price", "temperature", "promo"],
                    "description": "The day's figures.",
                },
            },
            "on_demand": {
                "shop_ratios": {
                    "function": "shop_ratios",
                    "outputs": {"price_per_visit": "float", "log_visits": "float", "busy": "bool"},
                    "description": "Ratios at request time.",
                }
            },
            "service": service or f"{name}_model_v1",
            "service_description": "The test shop model's features.",
        },
        "serving": {"score_field": "expected_units"},
    }


def write_usecase(root: Path, name: str, service: str | None = None) -> Path:
    """A use-case folder ``root/name`` (declaration and transforms); forgets a transforms
    module an earlier test imported under the same name."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(declaration(name, service), sort_keys=False)
    (folder / "usecase.yaml").write_text(text)
    (folder / "transforms.py").write_text(TRANSFORMS)
    sys.modules.pop(f"mlops_usecase_{name}_transforms", None)
    return folder


LAKE_TYPES = {
    "shop_id": pa.int64(),
    "observed_at": pa.timestamp("ns", tz="UTC"),
    "region": pa.string(),
    "size_m2": pa.int64(),
    "visits": pa.int64(),
    "price": pa.float64(),
    "temperature": pa.float64(),
    "promo": pa.bool_(),
    "units": pa.float64(),
}


def day_frame(day: dt.date, shops: int, offset: float = 0.0) -> pd.DataFrame:
    """One snapshot per shop on ``day``, its values a function of (shop, day, offset), so
    each day and each use case serves different values."""
    ids = np.arange(1, shops + 1)
    n = day.toordinal() - D0.toordinal()
    return pd.DataFrame(
        {
            "shop_id": ids,
            "observed_at": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(ids * 7, unit="s"),
            "region": np.where(ids % 2 == 0, "n", "s"),
            "size_m2": 100 + ids + n,
            "visits": (ids * 3 + n * 11 + int(offset)) % 300,
            "price": 10.0 + ids * 0.5 + n + offset,
            "temperature": np.where(ids % 5 == 0, np.nan, 15.0 + n),
            "promo": (ids + n) % 3 == 0,
            "units": 5.0 * ids + n + offset,
        }
    )


def write_lake(settings: Settings, days: list[dt.date], shops: int, offset: float = 0.0):
    """The days as validated partitions of ``settings``' lake (what ingestion writes)."""
    schema = pa.schema([pa.field(name, kind) for name, kind in LAKE_TYPES.items()])
    for day in days:
        frame = day_frame(day, shops, offset)

        def write(folder: Path, frame: pd.DataFrame = frame, day: dt.date = day) -> None:
            table = pa.Table.from_pandas(frame, preserve_index=False).cast(schema)
            pq.write_table(table, folder / "part-0.parquet")
            storage.write_json(
                folder / storage.MANIFEST,
                {"date": day.isoformat(), "validation_id": f"test-{day}", "rows": len(frame)},
            )

        storage.replace_partition(settings.lake_dir, day, write)
