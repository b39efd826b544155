"""The pipeline's model steps without Airflow: train, deploy, drift, predict. Each calls the
package functions its DAG task calls (orchestration/factory/), in the same order."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import Settings
from mlops_pipeline.failures import PermanentFailure
from mlops_pipeline.platform.cli.output import EXIT_REJECTED, cell, print_json, stage, table

if TYPE_CHECKING:
    from mlops_pipeline.deployment.records import Evaluation


class InputError(PermanentFailure):
    """The rows given to ``predict`` cannot be read or scored."""


def _run_reference(command: str) -> dict[str, str]:
    """Stands where a record names its Airflow run: which command, when."""
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return {"dag_id": f"mlops-pipeline {command}", "run_id": f"cli__{started}"}


def train(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.data import storage
    from mlops_pipeline.training.job import TrainingRequest, train_and_register

    spec = settings.spec
    validated = storage.partition_days(settings.lake_dir)
    if args.window_end is None and not validated:
        raise PermanentFailure(
            f"no validated partition of {spec.dataset} under {settings.lake_dir} to train on "
            "(mlops-pipeline ingest --date ...)"
        )
    window_end = spec.cadence.partition_of(args.window_end or validated[-1])
    reference = _run_reference("train")
    request = TrainingRequest(
        window_end=window_end,
        reason=args.reason,
        dag_id=reference["dag_id"],
        run_id=reference["run_id"],
    )
    with stage(f"training {spec.model_name} on the window ending {spec.cadence.key(window_end)}"):
        outcome = train_and_register(settings, request)
    if args.json:
        print_json(outcome.to_dict())
        return 0
    print(
        f"Registered {outcome.model_name} v{outcome.version} (@challenger) on "
        f"{outcome.data_window}; run {outcome.run_id}"
    )
    metrics = [gate.metric for gate in spec.gate_metrics]
    print(table(["test " + m for m in metrics], [[outcome.metrics.get(m) for m in metrics]]))
    if outcome.threshold is not None:
        print(f"  decision threshold {outcome.threshold:.4f}")
    print(f"Next: mlops-pipeline deploy --usecase {spec.name}")
    return 0


def deploy(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.deployment.decisions import record_decision
    from mlops_pipeline.deployment.evaluation import evaluate_challenger

    with stage("evaluating " + (f"v{args.version}" if args.version else "@challenger")):
        evaluation = evaluate_challenger(settings, args.version)
    version = evaluation.challenger.version
    reference = _run_reference("deploy")
    result: dict[str, Any] = {"evaluation": evaluation.model_dump(mode="json")}
    if args.evaluate_only:
        outcome, code = "evaluated only", 0 if evaluation.gates.passed else EXIT_REJECTED
    elif not evaluation.gates.passed:
        path = record_decision(
            settings, evaluation, "rejected", reference, reasons=evaluation.gates.reasons
        )
        outcome, code = "rejected", EXIT_REJECTED
        result["decision_record"] = str(path)
    elif settings.require_approval and not args.approve:
        outcome, code = "gates passed; awaiting approval (MLOPS_REQUIRE_APPROVAL)", EXIT_REJECTED
    else:
        decided_by = (
            f"{getpass.getuser()} (mlops-pipeline deploy --approve)"
            if args.approve
            else "gates (MLOPS_REQUIRE_APPROVAL is off)"
        )
        result.update(_promote(settings, evaluation, reference, decided_by))
        outcome, code = result["outcome"], 0
    result["outcome"] = outcome
    if args.json:
        print_json(result)
        return code
    print(_evaluation_text(evaluation))
    print(f"{evaluation.model_name} v{version}: {outcome}")
    for reason in evaluation.gates.reasons if not evaluation.gates.passed else []:
        print(f"  {reason}")
    if outcome.startswith("gates passed; awaiting"):
        print(
            f"Approve with: mlops-pipeline deploy --usecase {settings.spec.name} "
            f"--version {version} --approve"
        )
    if result.get("aliases"):
        print(f"  aliases: {_aliases(result['aliases'])}")
    for key in ("decision_record", "model_server"):
        if result.get(key):
            print(f"  {key.replace('_', ' ')}: {cell(result[key])}")
    return code


def _promote(
    settings: Settings, evaluation: Evaluation, reference: dict[str, str], decided_by: str
) -> dict[str, Any]:
    """The deploy DAG's promote and restart_model_server tasks."""
    from mlops_pipeline.deployment import docker_target
    from mlops_pipeline.deployment.promotion import promote_verified

    version = evaluation.challenger.version
    with stage(f"promoting v{version} to champion"):
        result = promote_verified(settings, evaluation, reference, decided_by)
    aliases = result["aliases"]
    if docker_target.configured(settings):
        with stage("restarting the model server"):
            restart = docker_target.restart_model_server(settings, str(aliases["champion"]))
        result["model_server"] = restart.to_dict()
    return result


def _aliases(aliases: dict[str, Any]) -> str:
    return ", ".join(f"{alias} {cell(version)}" for alias, version in aliases.items())


def _evaluation_text(evaluation: Evaluation) -> str:
    holdout, champion = evaluation.holdout, evaluation.champion
    against = f"v{champion.version}" if champion else "none (first model)"
    checks = evaluation.gates.checks
    return "\n".join(
        [
            f"Holdout {holdout.window} ({holdout.rows} rows): challenger "
            f"v{evaluation.challenger.version}, champion {against}",
            table(
                ["gate", "value", "threshold", "passed", "detail"],
                [[c.name, c.value, c.threshold, c.passed, c.detail] for c in checks],
            ),
        ]
    )


def drift(args: argparse.Namespace, settings: Settings) -> int:
    from mlops_pipeline.monitoring.nightly import run_nightly_check
    from mlops_pipeline.monitoring.records import NightOutcome

    cadence = settings.spec.cadence
    night = cadence.partition_of(args.date)
    with stage(f"checking {settings.spec.dataset} {cadence.key(night)} against the champion"):
        record = run_nightly_check(settings, night, _run_reference("drift"))
    outcome = NightOutcome.of(record)
    if args.json:
        print_json(outcome.model_dump(mode="json"))
        return 0
    print(
        f"{cadence.key(night)}: {outcome.status}, {outcome.rows} rows, champion "
        f"{cell(outcome.champion_version)}, drift share {cell(outcome.drift_share)}"
    )
    if outcome.drifted_columns:
        print(f"  drifted columns: {', '.join(outcome.drifted_columns)}")
    if outcome.performance is not None:
        p = outcome.performance
        print(
            f"  {p.metric}: {cell(p.value)} on {p.rows} labelled rows, "
            f"{cell(p.test_value)} at training (drop {cell(p.drop)})"
        )
    print(f"  retrain: {cell(outcome.retrain)} ({'; '.join(outcome.reasons)})")
    if outcome.report:
        print(f"  report: {outcome.report}")
    return 0


def predict(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd

    from mlops_pipeline.deployment import registry
    from mlops_pipeline.deployment.loading import load_alias
    from mlops_pipeline.features.on_demand import add_on_demand_features

    spec = settings.spec
    key = spec.entity.key
    unknown: list[int] = []
    if args.input is not None:
        columns = _read_rows(args.input, key)
    else:
        columns, unknown = _online_rows(settings, args.ids)
    with stage(f"loading {spec.model_name}@{registry.CHAMPION}"):
        loaded = load_alias(registry.client(settings), spec, registry.CHAMPION)
    if loaded is None:
        raise PermanentFailure(
            f"{spec.model_name} has no @{registry.CHAMPION} yet (mlops-pipeline deploy)"
        )
    missing = [name for name in spec.feature_columns if name not in columns]
    if missing:
        raise InputError(f"the rows have no column(s) {', '.join(missing)}")
    # As the server does with inline rows: the declared inputs only, and on-demand features
    # always computed by the use case's functions (never taken from the input).
    columns = {name: columns[name] for name in (key, *spec.feature_columns)}
    if columns[key] and spec.on_demand_features:
        columns = add_on_demand_features(spec, columns)
    scores: list[float] = loaded.scores(pd.DataFrame(columns)).tolist() if columns[key] else []
    score_field, decision_field = spec.serving.score_field, spec.serving.decision_field
    predictions: list[dict[str, Any]] = []
    for entity, score in zip(columns[key], scores, strict=True):
        row: dict[str, Any] = {key: entity, score_field: float(score)}
        if loaded.threshold is not None and decision_field:
            row[decision_field] = bool(score >= loaded.threshold)
        predictions.append(row)
    answer = {
        "model_name": loaded.name,
        "model_version": loaded.version,
        "threshold": loaded.threshold,
        "predictions": predictions,
        "unknown": [{key: i, "error": "no features online"} for i in unknown],
    }
    if args.json:
        print_json(answer)
        return 0
    print(f"{loaded.name} v{loaded.version} (@{registry.CHAMPION}):")
    headers = list(predictions[0]) if predictions else [key, score_field]
    print(table(headers, [list(p.values()) for p in predictions]))
    if unknown:
        print(f"  no features online for {', '.join(map(str, unknown))}")
    return 0


def _read_rows(path: Path, key: str) -> dict[str, list[Any]]:
    """Column name -> values from a CSV or JSON file (a list of objects, or the server's
    {"instances": [...]})."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path)
        elif path.suffix.lower() == ".json":
            body = json.loads(path.read_text())
            rows = body.get("instances") if isinstance(body, dict) else body
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise InputError(f'{path}: expected a list of objects or {{"instances": [...]}}')
            frame = pd.DataFrame(rows)
        else:
            raise InputError(f"{path}: expected a .csv or .json file")
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from exc
    if key not in frame.columns:
        raise InputError(f"{path}: no {key!r} column (the entity key)")
    # Missing values as None, as the server's inline rows carry them.
    frame = frame.astype(object).where(frame.notna(), None)
    return {str(name): frame[name].tolist() for name in frame.columns}


def _online_rows(settings: Settings, ids: list[int]) -> tuple[dict[str, list[Any]], list[int]]:
    """The service's features of ``ids`` from the online store, and the ids it has none for."""
    from mlops_pipeline.features.access import OnlineFeatureReader

    spec = settings.spec
    key = spec.entity.key
    with stage(f"reading {len(ids)} entities' features online"):
        columns = OnlineFeatureReader(settings).read(ids)
    stored = [name for name in columns if name != key and name in spec.feature_columns]
    known = [any(columns[name][i] is not None for name in stored) for i in range(len(ids))]
    unknown = [i for i, k in zip(ids, known, strict=True) if not k]
    kept = {
        name: [v for v, k in zip(values, known, strict=True) if k]
        for name, values in columns.items()
    }
    return kept, unknown
