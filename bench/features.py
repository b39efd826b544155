"""Feature store figures on the production path (Postgres registry, Redis online store):

- materialization of 1,000,000 rows (50,000 entities x 20 days) into Redis, including the
  backfill guard decision and the online post-check;
- online retrieval through the feature service, 1 and 100 entities, p50/p99 over 1,000 calls,
  on Redis and on the embedded SQLite store;
- historical retrieval (training set) for 30 days x 20,000 entities: time and peak memory,
  in a fresh process.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bench.common import median, run_python, save

D0 = dt.date(2025, 3, 1)
CALLS = 1_000
# The shipped use case the figures are measured on.
USECASE = os.environ.get("MLOPS_BENCH_USECASE", "churn")
POSTGRES_ADMIN_URL = os.environ.get(
    "MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("MLOPS_BENCH_REDIS", "127.0.0.1:6379")


def build_lake(home: Path, entities: int, days: int, usecase: str = USECASE):
    from mlops_pipeline.config import Settings
    from mlops_pipeline.data.datagen import generate_day
    from mlops_pipeline.data.ingestion import ingest_day

    settings = Settings(home=home, usecase=usecase, build_data_docs=False)
    for offset in range(days):
        day = D0 + dt.timedelta(days=offset)
        generate_day(settings, day, rows=entities, file_format="parquet")
        ingest_day(settings, day)
    return settings


def _percentiles(samples: list[float]) -> dict:
    values = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
    }


def _online_latency(settings) -> dict:
    from mlops_pipeline.features.access import OnlineFeatureReader

    reader = OnlineFeatureReader(settings)
    rng = np.random.default_rng(0)
    out = {}
    for batch in (1, 100):
        ids = [rng.integers(1, 50_000, size=batch).tolist() for _ in range(CALLS + 50)]
        for warm in ids[:50]:
            reader.read(warm)
        samples = []
        for request in ids[50:]:
            started = time.perf_counter()
            reader.read(request)
            samples.append(time.perf_counter() - started)
        out[f"{batch}_entities"] = _percentiles(samples)
    return out


def _postgres_database() -> tuple[str, callable]:
    import psycopg

    name = f"mlops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}", drop


_HISTORICAL_CHILD = r"""
import datetime as dt, json, sys, time, warnings
warnings.filterwarnings("ignore")
from mlops_pipeline.config import Settings
from mlops_pipeline.features.access import build_training_set
from mlops_pipeline.features.store import open_store
settings = Settings(home=sys.argv[1], usecase=sys.argv[4])
open_store(settings).get_feature_service(settings.spec.features.service)
from bench.common import peak_rss_bytes, rss_bytes
baseline = rss_bytes()
start = dt.date.fromisoformat(sys.argv[2]); end = dt.date.fromisoformat(sys.argv[3])
started = time.perf_counter()
training = build_training_set(settings, start, end)
seconds = time.perf_counter() - started
peak = peak_rss_bytes()
print(json.dumps({"seconds": seconds, "rows": len(training.frame),
                  "peak_over_baseline": peak - baseline, "peak_rss": peak}))
"""


def run() -> dict:
    from mlops_pipeline.features.materialization import (
        check_online,
        days_interval,
        materialize_interval,
    )
    from mlops_pipeline.features.store import open_store, register_definitions

    results: dict = {}
    root = Path(tempfile.mkdtemp(prefix="bench-features-"))
    # 1M rows into Redis on the production profile.
    settings = build_lake(root / "big", entities=50_000, days=20)
    registry_url, drop_database = _postgres_database()
    production = settings.replace(
        profile="production",
        feast_project_prefix=f"bench_{uuid.uuid4().hex[:8]}_",
        feast_registry_url=registry_url,
        redis_connection=REDIS,
    )
    try:
        register_definitions(production)
        days = [D0 + dt.timedelta(days=i) for i in range(20)]
        started = time.perf_counter()
        materialize_interval(production, *days_interval(days))
        check_online(production, days[-1])
        results["materialize_1M_redis_s"] = round(time.perf_counter() - started, 2)
        results["online_redis"] = _online_latency(production)
    finally:
        open_store(production).teardown()
        drop_database()
    # The same on the embedded SQLite store, for reference.
    register_definitions(settings)
    started = time.perf_counter()
    materialize_interval(settings, *days_interval(days))
    check_online(settings, days[-1])
    results["materialize_1M_sqlite_s"] = round(time.perf_counter() - started, 2)
    results["online_sqlite"] = _online_latency(settings)
    shutil.rmtree(root / "big")

    # Training set: 30 days x 20,000 entities, fresh processes, median of 3.
    history = build_lake(root / "history", entities=20_000, days=30)
    register_definitions(history)
    runs = [
        run_python(
            _HISTORICAL_CHILD,
            str(history.home),
            D0.isoformat(),
            (D0 + dt.timedelta(days=29)).isoformat(),
            USECASE,
        )
        for _ in range(3)
    ]
    results["usecase"] = USECASE
    results["feature_service"] = history.spec.features.service
    results["historical_30d_x_20k"] = {
        "rows": runs[0]["rows"],
        "seconds": round(median([r["seconds"] for r in runs]), 2),
        "peak_mib_over_baseline": round(median([r["peak_over_baseline"] for r in runs]) / 2**20),
        "peak_rss_mib": round(median([r["peak_rss"] for r in runs]) / 2**20),
    }
    shutil.rmtree(root)
    save("features", results)
    return results


def report(results: dict) -> str:
    hist = results["historical_30d_x_20k"]
    service = results["feature_service"]
    lines = [
        "Feature store (production path: Postgres registry, Redis online store)",
        "| measure | goal | measured |",
        "|---|---|---|",
        f"| materialize 1,000,000 rows into Redis, guard + post-check | < 8 s | "
        f"{results['materialize_1M_redis_s']} s |",
        f"| same into SQLite (embedded) | | {results['materialize_1M_sqlite_s']} s |",
    ]
    for store in ("redis", "sqlite"):
        goal = {"1": "p99 < 1 ms", "100": "p99 < 8 ms"} if store == "redis" else {}
        for batch in ("1", "100"):
            row = results[f"online_{store}"][f"{batch}_entities"]
            lines.append(
                f"| online read via `{service}`, {batch} entity(ies), {store} "
                f"(p50 / p99 of {CALLS}) | {goal.get(batch, '')} | "
                f"{row['p50_ms']} / {row['p99_ms']} ms |"
            )
    lines.append(
        f"| training set, 30 days x 20,000 entities ({hist['rows']:,} rows), median of 3 | "
        f"< 10 s, < 1.5 GiB | {hist['seconds']} s, peak RSS {hist['peak_rss_mib']} MiB "
        f"(+{hist['peak_mib_over_baseline']} MiB) |"
    )
    return "\n".join(lines)
