"""Real services for the production profile: the machine's Postgres and Redis.

Each test session creates its own Postgres database, each test its own Feast project prefix
(the projects are the Redis key prefixes), and removes both afterwards. Unreachable services
skip these tests with the reason, unless REQUIRE_SERVICES=1 (set by .ci/run), where they fail
instead.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.conftest import skip_or_fail

POSTGRES_ADMIN_URL = os.environ.get(
    "MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_HOST = os.environ.get("MLOPS_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("MLOPS_TEST_REDIS_PORT", "6379"))


def _unavailable(what: str, error: Exception) -> None:
    skip_or_fail(f"{what} unreachable: {type(error).__name__}: {error}")


def postgres_admin():
    """An autocommit connection to the maintenance database, or skip/fail when unreachable."""
    import psycopg

    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except Exception as error:  # noqa: BLE001 - any connection failure means unavailable
        _unavailable("PostgreSQL", error)


@pytest.fixture(scope="session")
def postgres_database():
    """A fresh database; yields its SQLAlchemy URL (psycopg 3 driver)."""
    import psycopg

    name = f"mlops_it_{uuid.uuid4().hex[:10]}"
    with postgres_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_client():
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=5)
    try:
        client.ping()
    except Exception as error:  # noqa: BLE001
        _unavailable("Redis", error)
    yield client
    client.close()


def remove_feast_project(settings, redis_client) -> None:
    """Tear down a Feast project: its Redis keys and the registry's objects. Feast's SQL
    registry teardown empties the registry tables of every project in the database, not only
    this one: harmless here, the database is this session's and tests run one at a time."""
    from mlops_pipeline.features.store import open_store

    open_store(settings).teardown()
    for key in redis_client.scan_iter(match=f"*{settings.feast_project}*"):
        redis_client.delete(key)


@pytest.fixture
def production_settings(settings, postgres_database, redis_client):
    """Production profile: Feast registry on Postgres, online store on Redis, with a project
    prefix of its own (so each use case's project and Redis keys are this test's), torn down
    afterwards. Settings of other use cases derived with ``for_usecase`` share the prefix."""
    production = settings.replace(
        profile="production",
        feast_project_prefix=f"it_{uuid.uuid4().hex[:10]}_",
        feast_registry_url=postgres_database,
        redis_connection=f"{REDIS_HOST}:{REDIS_PORT}",
    )
    yield production
    remove_feast_project(production, redis_client)
