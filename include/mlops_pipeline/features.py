"""Feature access for training and serving, both through the ``churn_model_v1`` service.

Training sets are point-in-time correct: each labelled entity row gets the feature values as
of its own timestamp (never later), within each view's TTL. Serving reads the same features
from the online store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from mlops_pipeline import contract, storage
from mlops_pipeline.config import Settings
from mlops_pipeline.feature_groups import FEATURE_SERVICE
from mlops_pipeline.feature_store import open_store

ENTITY_COLUMNS = [contract.ENTITY_KEY, contract.EVENT_TIMESTAMP, contract.LABEL]


class NotEnoughData(ValueError):
    """The window holds no validated days: deterministic, do not retry."""


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    feature_service: str
    days: list[dt.date]
    # One manifest per validated partition used: validation id, content hash, counts.
    partitions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in ENTITY_COLUMNS]


def entity_rows(settings: Settings, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, list]:
    """Labelled entity rows of the validated days in ``[start, end]`` and their manifests.
    Days that failed validation have no partition and contribute nothing."""
    frames, manifests = [], []
    for day in storage.partition_days(settings.lake_dir):
        if start <= day <= end:
            partition = storage.partition_dir(settings.lake_dir, day)
            frames.append(pq.read_table(partition, columns=ENTITY_COLUMNS).to_pandas())
            manifests.append(storage.read_manifest(partition) or {"date": day.isoformat()})
    if not frames:
        raise NotEnoughData(f"no validated partitions between {start} and {end}")
    return pd.concat(frames, ignore_index=True), manifests


def build_training_set(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    feature_service: str = FEATURE_SERVICE,
) -> TrainingSet:
    """The point-in-time correct training frame for the days ``[start, end]``: entity rows
    with their labels, joined by Feast to the service's features as of each row's timestamp."""
    entities, manifests = entity_rows(settings, start, end)
    store = open_store(settings)
    frame = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service(feature_service)
    ).to_df()
    # Feast returns rows in no guaranteed order; training must be reproducible.
    frame = frame.sort_values([contract.EVENT_TIMESTAMP, contract.ENTITY_KEY], kind="stable")
    return TrainingSet(
        frame=frame.reset_index(drop=True),
        feature_service=feature_service,
        days=[dt.date.fromisoformat(m["date"]) for m in manifests],
        partitions=manifests,
    )


class OnlineFeatureReader:
    """Reads the service's features for customers from the online store (used by serving).
    Holds one store so repeated reads do not re-open registry and connections."""

    def __init__(self, settings: Settings, feature_service: str = FEATURE_SERVICE) -> None:
        self.store = open_store(settings)
        self.service = self.store.get_feature_service(feature_service)

    def read(self, customer_ids: Sequence[int]) -> dict[str, list[Any]]:
        """Column name -> values, in ``customer_ids`` order; unknown customers get None."""
        return self.store.get_online_features(
            features=self.service,
            entity_rows=[{contract.ENTITY_KEY: int(k)} for k in customer_ids],
        ).to_dict()
