"""The feature store on the production profile: SQL registry on Postgres, Redis online store."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pydantic import SecretStr

from mlops_pipeline.data import storage
from mlops_pipeline.data.datagen import generate_day
from mlops_pipeline.data.ingestion import ingest_day
from mlops_pipeline.features.access import OnlineFeatureReader, build_training_set
from mlops_pipeline.features.materialization import (
    check_online,
    days_interval,
    materialize_interval,
)
from mlops_pipeline.features.store import open_store, register_definitions
from tests.integration.conftest import remove_feast_project
from tests.unit import feature_usecases as shops

pytestmark = pytest.mark.integration

DAYS = [dt.date(2025, 6, 2) + dt.timedelta(days=i) for i in range(3)]


def test_registry_on_postgres_and_online_store_on_redis(production_settings, redis_client):
    settings = production_settings
    for day in DAYS:
        generate_day(settings, day, rows=300)
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
    spec = settings.spec
    served = OnlineFeatureReader(settings).read(newest[spec.entity.key].tolist())
    for name in spec.feature_columns:
        assert served[name] == newest[name].tolist(), name

    training = build_training_set(settings, DAYS[0], DAYS[-1])
    assert len(training.frame) == 3 * 300 and training.frame[spec.label].notna().all()


def test_unreachable_registry_fails_clearly(settings):
    broken = settings.replace(
        profile="production",
        feast_registry_url=SecretStr("postgresql+psycopg://postgres@127.0.0.1:1/none"),
    )
    with pytest.raises(Exception, match="(?i)connect"):
        register_definitions(broken)


def test_use_cases_share_the_registry_and_redis_in_projects_of_their_own(
    production_settings, redis_client, tmp_path, monkeypatch
):
    # Two use cases with the same entity key and view names, different values.
    root = tmp_path / "usecases"
    for name in ("shop_a", "shop_b"):
        shops.write_usecase(root, name)
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(root))
    first = production_settings.replace(usecases_dir=root, usecase="shop_a")
    second = first.for_usecase("shop_b")
    shop_days = [shops.D0 + dt.timedelta(days=i) for i in range(2)]
    shops.write_lake(first, shop_days, 30)
    shops.write_lake(second, shop_days, 30, offset=1000.0)
    try:
        assert register_definitions(first).applied and register_definitions(second).applied
        materialize_interval(first, *days_interval([shop_days[-1]]))
        materialize_interval(second, *days_interval([shop_days[0]]))
        assert not register_definitions(first).applied, "shop_b's apply left shop_a's alone"
        for settings, day, offset in ((first, shop_days[-1], 0.0), (second, shop_days[0], 1000.0)):
            assert check_online(settings, day).served_day_values == 30
            served = OnlineFeatureReader(settings).read([1, 2])
            assert served["price"] == shops.day_frame(day, 30, offset)["price"][:2].tolist()
            assert served["busy"] == [False, False]
        views = open_store(first).get_feature_view("shop_day").materialization_intervals
        assert [end.date() for _, end in views] == [shop_days[-1] + dt.timedelta(days=1)]
        assert [s.name for s in open_store(second).list_feature_services()] == ["shop_b_model_v1"]
    finally:
        remove_feast_project(first, redis_client)
        remove_feast_project(second, redis_client)
