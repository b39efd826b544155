"""The feature store on the production profile: SQL registry on Postgres, Redis online store."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pydantic import SecretStr

from mlops_pipeline.data import contract, storage
from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.features.access import OnlineFeatureReader, build_training_set
from mlops_pipeline.features.materialization import (
    check_online,
    days_interval,
    materialize_interval,
)
from mlops_pipeline.features.store import open_store, register_definitions

pytestmark = pytest.mark.integration

DAYS = [dt.date(2025, 6, 2) + dt.timedelta(days=i) for i in range(3)]


def test_registry_on_postgres_and_online_store_on_redis(production_settings, redis_client):
    settings = production_settings
    for day in DAYS:
        generate_day(settings.landing_dir, day, 300)
        ingest_day(settings, day)

    store = open_store(settings)
    assert store.config.registry.registry_type == "sql"
    assert store.config.online_store.type == "redis"
    assert register_definitions(settings).applied
    assert not register_definitions(settings).applied

    materialize_interval(settings, *days_interval([DAYS[2]]))
    assert any(redis_client.scan_iter(match=f"*{settings.feast_project}*", count=1000))
    assert check_online(settings, DAYS[2]).served_day_values == settings.online_check_sample

    # Redis compares event timestamps itself: an older interval goes through Feast's own
    # materialization and still cannot overwrite.
    newest = pd.read_parquet(storage.partition_dir(settings.lake_dir, DAYS[2]))
    result = materialize_interval(settings, *days_interval([DAYS[0]]))
    assert set(result.feature_views.values()) == {"materialize"}
    served = OnlineFeatureReader(settings).read(newest[contract.ENTITY_KEY].tolist())
    for name in contract.FEATURE_COLUMNS:
        assert served[name] == newest[name].tolist(), name

    training = build_training_set(settings, DAYS[0], DAYS[-1])
    assert len(training.frame) == 3 * 300 and training.frame[contract.LABEL].notna().all()


def test_unreachable_registry_fails_clearly(settings):
    broken = settings.replace(
        profile="production",
        feast_registry_url=SecretStr("postgresql+psycopg://postgres@127.0.0.1:1/none"),
    )
    with pytest.raises(Exception, match="(?i)connect"):
        register_definitions(broken)
