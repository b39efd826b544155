"""Serving latency and throughput over real HTTP with wrk (loopback), side by side with
`mlflow models serve` on the same model in the same run.

Single-entity requests of every shipped use case (one model server per use case, as
`make airflow` and the compose file run them), at concurrency 1 and 8, for: our server with the
feature lookup (Feast online store, embedded SQLite) and with inline features, each with one
worker process and with two; with one worker also with the live shadow on
(``MLOPS_SERVING_SHADOW``: a second version registered as the challenger, scored after every
answer); and, for the first use case (churn, whose figures are the
non-regression reference), MLflow's scoring server on the same model with inline features (it
has no feature lookup).

``MLOPS_BENCH_SERVING_ONLY=shadow`` runs only the shadow comparison (the one-worker server with
the shadow off and on). ``MLOPS_BENCH_SHADOW_BASELINE=<dir>`` (a copy of another version's
``include/``) adds a third one-worker server with the shadow on, running that code: two
shadow implementations measured in the same rounds, each beside the shadow off.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.common import median, save
from bench.features import D0, build_lake
from mlops_pipeline.serving.process import free_port, wait_until_ready

ENTITIES = 5_000
# The use cases measured (default: every declared one); the first also runs MLflow's server.
USECASES = os.environ.get("MLOPS_BENCH_USECASES", "")
DAYS = 9
DURATION_S = 10
WARMUP_S = 3
CONCURRENCY = (1, 8)
# Each case is measured this many times, interleaved with the others, and reported as the
# median, so one noisy neighbour moment does not decide a figure.
REPEATS = 3
# Worker processes of each server (uvicorn workers for both): one, and one per core here.
WORKERS = (1, 2)
# Our one-worker server also runs with the live shadow on (a challenger registered beside the
# champion), side by side with it off: the shadow's cost to the champion's latency.
SHADOW_WORKERS = (1,)
ONLY = os.environ.get("MLOPS_BENCH_SERVING_ONLY", "")
SHADOW_BASELINE = os.environ.get("MLOPS_BENCH_SHADOW_BASELINE", "")
if ONLY not in ("", "shadow"):
    raise ValueError(f"MLOPS_BENCH_SERVING_ONLY={ONLY!r}: only 'shadow' is known")


def _wrk(url: str, body: dict, connections: int, scratch: Path, seconds: int = DURATION_S) -> dict:
    script = scratch / f"post-{connections}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    threads = min(connections, 2)
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def run() -> dict:
    from mlops_pipeline.config import get_settings
    from mlops_pipeline.usecases.loader import declared_usecases

    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk); `make bench` installs it")
    names = [n for n in USECASES.split(",") if n] or declared_usecases(get_settings().usecases_dir)
    results: dict = {
        "entities": ENTITIES,
        "duration_s": DURATION_S,
        "repeats": REPEATS,
        "only": ONLY or None,
        "shadow_baseline": SHADOW_BASELINE or None,
        "usecases": {},
    }
    for index, name in enumerate(names):
        print(f"serving bench: {name} ...", file=sys.stderr, flush=True)
        results["usecases"][name] = _run_usecase(name, with_mlflow=index == 0 and not ONLY)
    save("serving_shadow" if ONLY else "serving", results)
    return results


def _run_usecase(usecase: str, with_mlflow: bool) -> dict:
    import pandas as pd

    from mlops_pipeline.data import storage
    from mlops_pipeline.deployment.promotion import promote
    from mlops_pipeline.features.access import OnlineFeatureReader
    from mlops_pipeline.features.materialization import days_interval, materialize_interval
    from mlops_pipeline.features.store import register_definitions
    from mlops_pipeline.training.job import TrainingRequest, train_and_register
    from mlops_pipeline.training.model import model_inputs

    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    settings = build_lake(root, entities=ENTITIES, days=DAYS, usecase=usecase)
    register_definitions(settings)
    days = [D0 + dt.timedelta(days=i) for i in range(DAYS)]
    materialize_interval(settings, *days_interval(days))
    outcome = train_and_register(settings, TrainingRequest(days[-1], 28, reason="bench"))
    promote(settings, outcome.version)
    # A second version, left as the challenger: what the shadow servers score beside it.
    train_and_register(settings, TrainingRequest(days[-2], 28, reason="bench shadow"))

    spec = settings.spec
    key = spec.entity.key
    newest = pd.read_parquet(storage.partition_dir(settings.lake_dir, days[-1]), columns=[key])
    entity = int(newest[key].iloc[0])
    features = OnlineFeatureReader(settings).read([entity])
    raw = {k: features[k][0] for k in spec.feature_columns}
    row = model_inputs(spec, pd.DataFrame(features)).iloc[0]
    inputs = list(spec.model_features)
    mlflow_body = {
        "dataframe_split": {
            "columns": inputs,
            "data": [[row[c].item() if hasattr(row[c], "item") else row[c] for c in inputs]],
        }
    }
    env = {
        **os.environ,
        **settings.to_env(),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        # mlflow's scoring server execs `uvicorn` by name.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    mlflow = str(Path(sys.executable).parent / "mlflow")
    model_uri = f"models:/{outcome.model_name}@champion"
    servers: dict[str, tuple[list[str], str]] = {}  # name -> (command line, readiness path)
    for workers in SHADOW_WORKERS if ONLY else WORKERS:
        ours = [sys.executable, "-m", "mlops_pipeline.platform.cli", "serve"]
        servers[f"ours_w{workers}"] = ([*ours, "--workers", str(workers)], "/ready")
        if workers in SHADOW_WORKERS:
            servers[f"ours_shadow_w{workers}"] = ([*ours, "--workers", str(workers)], "/ready")
            if SHADOW_BASELINE:
                servers[f"ours_shadow_baseline_w{workers}"] = servers[f"ours_shadow_w{workers}"]
        if with_mlflow:
            servers[f"mlflow_w{workers}"] = (
                [mlflow, "models", "serve", "-m", model_uri, "--env-manager", "local"]
                + ["-h", "127.0.0.1", "--workers", str(workers)],
                "/ping",
            )
    ports = {name: free_port() for name in servers}
    shadow_env = {**env, "MLOPS_SERVING_SHADOW": "true"}
    # PYTHONPATH comes before the editable install's path: the baseline's package wins.
    baseline_env = {**shadow_env, "PYTHONPATH": SHADOW_BASELINE}
    server_env = {"ours_shadow_baseline": baseline_env, "ours_shadow": shadow_env}
    processes = {
        name: subprocess.Popen(
            [*command, "--port" if name.startswith("ours") else "-p", str(ports[name])],
            env=server_env.get(name.rsplit("_w", 1)[0], env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name, (command, _) in servers.items()
    }
    samples: dict[str, list[dict]] = {}
    try:
        for name, (_, ready) in servers.items():
            process = processes[name]
            wait_until_ready(
                process,
                f"http://127.0.0.1:{ports[name]}{ready}",
                180,
                lambda p=process: p.stderr.read().decode()[-2000:],
            )
        for name in servers:
            if name.startswith("ours_shadow"):
                _wait_for_shadow(f"http://127.0.0.1:{ports[name]}/model")
        scratch = root / "wrk"
        scratch.mkdir()
        cases = {}
        lookup, inline = {"entities": {key: [entity]}}, {"instances": [raw]}
        for workers in SHADOW_WORKERS if ONLY else WORKERS:
            ours = f"http://127.0.0.1:{ports[f'ours_w{workers}']}/predict"
            cases[f"ours_feature_lookup_w{workers}"] = (ours, lookup)
            cases[f"ours_inline_w{workers}"] = (ours, inline)
            for server in ("ours_shadow", "ours_shadow_baseline"):
                if f"{server}_w{workers}" in ports:
                    shadowed = f"http://127.0.0.1:{ports[f'{server}_w{workers}']}/predict"
                    cases[f"{server}_feature_lookup_w{workers}"] = (shadowed, lookup)
                    cases[f"{server}_inline_w{workers}"] = (shadowed, inline)
            if with_mlflow:
                theirs = f"http://127.0.0.1:{ports[f'mlflow_w{workers}']}/invocations"
                cases[f"mlflow_models_serve_inline_w{workers}"] = (theirs, mlflow_body)
        for url, body in cases.values():
            httpx.post(url, json=body, timeout=30).raise_for_status()
            for connections in CONCURRENCY:
                _wrk(url, body, connections, scratch, seconds=WARMUP_S)
        for repeat in range(REPEATS):
            print(f"  {usecase}: round {repeat + 1} of {REPEATS}", file=sys.stderr, flush=True)
            # Each concurrency's cases back to back: a shadow run sits next to its pair.
            for connections in CONCURRENCY:
                for name, (url, body) in cases.items():
                    run = _wrk(url, body, connections, scratch)
                    samples.setdefault(f"{name}@c{connections}", []).append(run)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)
    return {
        "runs": {
            case: {field: median([run[field] for run in runs]) for field in runs[0]}
            for case, runs in samples.items()
        },
        "shadow": _shadow_pairs(samples),
        "samples": samples,
    }


def _shadow_pairs(samples: dict[str, list[dict]]) -> dict[str, dict]:
    """Each shadowed case beside the same case with the shadow off, round by round: the
    median of the rounds' p99 ratios (the pairs share the machine's moment)."""
    pairs = {}
    for case, runs in samples.items():
        for server in ("ours_shadow_baseline", "ours_shadow"):
            if case.startswith(server + "_"):
                off = samples[case.replace(server, "ours", 1)]
                pairs[case] = {
                    "p99_off_ms": median([r["p99_ms"] for r in off]),
                    "p99_on_ms": median([r["p99_ms"] for r in runs]),
                    "p99_ratio": median(
                        [on["p99_ms"] / o["p99_ms"] for on, o in zip(runs, off, strict=True)]
                    ),
                    "req_per_s_ratio": median(
                        [on["req_per_s"] / o["req_per_s"] for on, o in zip(runs, off, strict=True)]
                    ),
                }
                break
    return pairs


def _wait_for_shadow(model_url: str, timeout_s: float = 120) -> None:
    """Until the server's live shadow has loaded the challenger."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shadow = httpx.get(model_url, timeout=10).json().get("shadow") or {}
        if shadow.get("version"):
            return
        time.sleep(1)
    raise RuntimeError(f"{model_url}: the shadow did not load the challenger")


def report(results: dict) -> str:
    lines = [
        "Serving, single-entity requests, wrk on loopback, medians of "
        f"{results['repeats']} runs of {results['duration_s']} s "
        "(goal: p99 < 5 ms at c=1 with the lookup; at c=8 >= 3x mlflow's throughput, p99 < 30 ms)",
        "| use case | server | workers | concurrency | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for usecase, measured in results["usecases"].items():
        for key, row in measured["runs"].items():
            case, connections = key.rsplit("@c", 1)
            name, workers = case.rsplit("_w", 1)
            lines.append(
                f"| {usecase} | {name} | {workers} | {connections} | {row['req_per_s']:.0f} | "
                f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['non_2xx']} |"
            )
    lines += [
        "",
        "Live shadow beside it off, one worker: median over the rounds of each pair's ratio "
        "(goal: p99 on/off <= 1.10 at c=1 and c=8)",
        "| use case | server | concurrency | p99 off ms | p99 on ms | p99 on/off | req/s on/off |",
        "|---|---|---|---|---|---|---|",
    ]
    for usecase, measured in results["usecases"].items():
        for key, pair in measured.get("shadow", {}).items():
            case, connections = key.rsplit("@c", 1)
            lines.append(
                f"| {usecase} | {case.rsplit('_w', 1)[0]} | {connections} | "
                f"{pair['p99_off_ms']:.2f} | {pair['p99_on_ms']:.2f} | {pair['p99_ratio']:.2f} | "
                f"{pair['req_per_s_ratio']:.2f} |"
            )
    return "\n".join(lines)
