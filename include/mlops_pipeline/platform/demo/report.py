"""What the demo prints: the table of a lifecycle, where each use case's state lives, and live
predictions from each use case's model server."""

from __future__ import annotations

import json
import math
from typing import Any

from mlops_pipeline.config import Settings
from mlops_pipeline.platform.demo.lifecycle import champion_label

HEADERS = [
    "date",
    "scenario",
    "dag_run",
    "rows",
    "quarantined",
    "drift_share",
    "retrain",
    "champion",
    "model",
    "seconds",
]


def table(rows: list[dict]) -> str:
    """A lifecycle's rows as aligned text columns."""
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in HEADERS}
    out = ["  ".join(h.ljust(widths[h]) for h in HEADERS)]
    out.append("  ".join("-" * widths[h] for h in HEADERS))
    out += ["  ".join(str(r[h]).ljust(widths[h]) for h in HEADERS) for r in rows]
    return "\n".join(out)


def where_things_are(settings: Settings) -> None:
    """Print where the use case's data, features, reports and models are."""
    from mlops_pipeline.data import storage
    from mlops_pipeline.features.materialization import materialized_ranges
    from mlops_pipeline.monitoring.textfile import prometheus_file

    spec = settings.spec
    print(f"-- {spec.name}")
    lake_days = storage.partition_days(settings.lake_dir)
    print(f"Validated partitions: {len(lake_days)} under {settings.lake_dir}")
    print(f"Validation results:   {settings.validations_dir}")
    print(f"Quarantine:           {settings.quarantine_dir}")
    print(f"Feature store:        {settings.feast_dir} (project {settings.feast_project})")
    for view, span in materialized_ranges(settings).items():
        print(f"  {view:<20} materialized {span['from']} .. {span['to']}")
    drift_dir = settings.drift_reports_dir
    print(f"Drift reports:        {drift_dir}/night=YYYY-MM-DD/report.html (+ summary.json)")
    print(f"Drift metrics:        {prometheus_file(settings)} (Prometheus textfile)")
    print(f"Decision records:     {settings.decisions_dir}")
    print(
        f"MLflow:               model {spec.model_name}, experiments "
        f"{spec.training_experiment}, {spec.monitoring_experiment}"
    )


def _sample_rows(settings: Settings, count: int) -> list[dict[str, Any]]:
    """A few rows of the latest validated partition, JSON-ready."""
    import pandas as pd

    from mlops_pipeline.data import storage

    days = storage.partition_days(settings.lake_dir)
    if not days:
        return []
    frame = pd.read_parquet(storage.partition_dir(settings.lake_dir, days[-1])).head(count)
    rows = json.loads(frame.to_json(orient="records", date_format="iso"))
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]


def show_live_predictions(settings: Settings) -> None:
    """Start the use case's model server, ask it by entity id and inline, stop it."""
    import httpx

    from mlops_pipeline.serving.process import running_server

    spec = settings.spec
    key, score, decision = spec.entity.key, spec.serving.score_field, spec.serving.decision_field
    if champion_label(settings) == "-":
        print(f"\n{spec.name}: no champion (the gates promoted no model): nothing to serve.")
        return
    rows = _sample_rows(settings, 3)
    ids = [row[key] for row in rows] + [10**9]
    inline = {c: rows[0][c] for c in (key, *spec.feature_columns)} if rows else {}
    try:
        with running_server(settings) as base:
            by_id = httpx.post(f"{base}/predict", json={"entities": {key: ids}}, timeout=30)
            by_row = httpx.post(f"{base}/predict", json={"instances": [inline]}, timeout=30)
    except (RuntimeError, TimeoutError) as exc:
        print(f"\n{spec.name}: the model server did not start: {exc}")
        return
    for label, answer in (("by entity id", by_id), ("inline", by_row)):
        if answer.status_code != 200:
            print(f"\n{spec.name} {label}: HTTP {answer.status_code}: {answer.text[:300]}")
            continue
        body = answer.json()
        threshold = body.get("threshold")
        print(
            f"\nLive predictions of {spec.name} {label} from {base} (model "
            f"{body['model_name']} v{body['model_version']}"
            + (f", threshold {threshold:.3f}" if threshold is not None else "")
            + "):"
        )
        for prediction in body["predictions"]:
            shown = f"{score}={prediction[score]:.3f}"
            if decision:
                shown += f" {decision}={prediction[decision]}"
            print(f"  {key} {prediction.get(key)!s:>10}: {shown}")
        for unknown in body.get("unknown", []):
            print(f"  {key} {unknown[key]!s:>10}: {unknown['error']}")
