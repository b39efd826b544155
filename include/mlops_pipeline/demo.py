"""``make demo``: a week of generated days ingested and materialized through Airflow on
embedded defaults."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
import warnings

from mlops_pipeline.config import Settings, get_settings

DEMO_START = dt.date(2025, 6, 2)
DEMO_DAYS = 10
# One day loses a few rows to quarantine and still passes; one day is broken and fails whole.
DEMO_SCENARIOS = {2: "out_of_range", 4: "schema_break"}


def run_demo(settings: Settings) -> list[dict]:
    from mlops_pipeline import airflow_runner, storage
    from mlops_pipeline.datagen import generate_day
    from mlops_pipeline.materialization import materialized_ranges

    airflow_runner.configure_embedded_airflow(settings)
    rows = []
    for offset in range(DEMO_DAYS):
        day = DEMO_START + dt.timedelta(days=offset)
        scenario = DEMO_SCENARIOS.get(offset, "clean")
        generate_day(settings.landing_dir, day, rows=settings.rows_per_day, scenario=scenario)
        started = time.perf_counter()
        dag_run = airflow_runner.run_daily("ingest_customer_activity", day)
        features = model = "-"
        if str(dag_run.state) == "success":
            # What the asset event would trigger: materialize the day that was just validated.
            materialized = airflow_runner.run_dag(
                "materialize_customer_features", conf={"dates": [day.isoformat()]}
            )
            features = "online" if str(materialized.state) == "success" else "FAILED"
            # What customer_features_online triggers: training, when enough days are in and
            # the cadence allows (the first model, here).
            trained = airflow_runner.run_dag(
                "train_churn_model",
                conf={"window_end": day.isoformat(), "reason": "features"},
            )
            model = _trained_version(settings, trained, airflow_runner)
            if model.endswith("challenger"):
                # What churn_model_challenger triggers: the gated deployment.
                deployed = airflow_runner.run_dag(
                    "deploy_churn_model", conf={"version": model.split()[0].lstrip("v")}
                )
                states = airflow_runner.task_states(deployed)
                model += " -> champion" if states.get("promote") == "success" else " rejected"
        report_path = settings.reports_dir / "ingestion" / f"date={day.isoformat()}.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        rows.append(
            {
                "date": day.isoformat(),
                "scenario": scenario,
                "dag_run": str(dag_run.state),
                "rows": report.get("rows_valid", 0),
                "quarantined": report.get("rows_quarantined", 0),
                "features": features,
                "model": model,
                "seconds": round(time.perf_counter() - started, 1),
                "why": report.get("message", ""),
            }
        )
    lake_days = storage.partition_days(settings.lake_dir)
    print(_table(rows))
    print(f"\nValidated partitions: {len(lake_days)} under {settings.lake_dir}")
    print(f"Data Docs:            {settings.data_docs_dir / 'index.html'}")
    print(f"Validation results:   {settings.validations_dir}")
    print(f"Quarantine:           {settings.quarantine_dir}")
    print(f"Feature store:        {settings.feast_dir} (registry, SQLite online store)")
    for view, span in materialized_ranges(settings).items():
        print(f"  {view:<20} materialized {span['from']} .. {span['to']}")
    print(f"MLflow:               {settings.tracking_uri}")
    print(
        "  open the UI with:   .venv/bin/mlflow ui --backend-store-uri "
        f"{settings.tracking_uri} --port 5000"
    )
    print("State summary:        .venv/bin/mlops-pipeline status")
    _show_live_predictions(settings)
    return rows


def _show_live_predictions(settings: Settings) -> None:
    """Start the model server, ask it for a few customers, stop it."""
    import httpx

    from mlops_pipeline.serving.process import running_server

    try:
        with running_server(settings) as base:
            answer = httpx.post(f"{base}/predict", json={"customer_ids": [1, 2, 3, 42, 10**9]})
    except (RuntimeError, TimeoutError) as exc:
        print(f"\nModel server did not start (is there a champion?): {exc}")
        return
    body = answer.json()
    print(
        f"\nLive predictions from {base} (model v{body['model_version']}, "
        f"threshold {body['threshold']:.3f}):"
    )
    for prediction in body["predictions"]:
        print(
            f"  customer {prediction['customer_id']:>6}: p(churn)="
            f"{prediction['churn_probability']:.3f} churn={prediction['churn']}"
        )
    for unknown in body["unknown"]:
        print(f"  customer {unknown['customer_id']}: {unknown['error']}")


def _trained_version(settings: Settings, dag_run, airflow_runner) -> str:
    states = airflow_runner.task_states(dag_run)
    if str(dag_run.state) != "success":
        return "FAILED"
    if states.get("train") != "success":
        return "not due"
    from mlops_pipeline.registry import CHALLENGER, client, version_for_alias

    version = version_for_alias(client(settings), settings.registered_model_name, CHALLENGER)
    return f"v{version.version} challenger"


def _table(rows: list[dict]) -> str:
    headers = [
        "date",
        "scenario",
        "dag_run",
        "rows",
        "quarantined",
        "features",
        "model",
        "seconds",
        "why",
    ]
    widths = {h: max(len(h), *(len(_cell(r[h], h)) for r in rows)) for h in headers}
    line = "  ".join(h.ljust(widths[h]) for h in headers)
    out = [line, "  ".join("-" * widths[h] for h in headers)]
    out += ["  ".join(_cell(r[h], h).ljust(widths[h]) for h in headers) for r in rows]
    return "\n".join(out)


def _cell(value, header: str) -> str:
    text = str(value)
    return text if header != "why" or len(text) <= 110 else text[:107] + "..."


def main() -> int:
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    rows = run_demo(get_settings())
    # The broken day is supposed to fail; anything else failing is a real problem.
    unexpected = [
        r
        for r in rows
        if (r["dag_run"] == "success") != (r["scenario"] in ("clean", "out_of_range"))
        or "FAILED" in (r["features"], r["model"])
    ]
    if unexpected:
        print(f"\nUnexpected outcomes: {unexpected}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
