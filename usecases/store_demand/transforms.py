"""On-demand features of the store demand use case (Feast Python mode: columns in, columns
out)."""

from typing import Any


def store_density(inputs: dict[str, Any]) -> dict[str, Any]:
    """A day's visitors per square metre of floor: how crowded the store is, whatever its
    size."""
    footfall, area = inputs["footfall_7d"], inputs["floor_area_sqm"]
    return {
        "daily_footfall_per_sqm": [
            f / 7.0 / a if f is not None and a else None
            for f, a in zip(footfall, area, strict=True)
        ],
    }
