"""Gated deployment: score challenger and champion on the same frozen holdout, decide with
the gates, move aliases, and keep a decision record of every run, pass or fail.

Works alike for both task types: a classifier is scored by its probabilities at its own
version's threshold, a regressor by its predictions; the metrics, gates, segments and names
all come from the use case's declaration (``settings.spec``).

Alias moves are the only writes here; the deploy and rollback DAGs serialize them through a
one-slot pool, so two runs can never interleave ``previous_champion`` and ``champion``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_pipeline.config import Settings
from mlops_pipeline.deployment import registry
from mlops_pipeline.deployment.gates import GateConfig, GateReport, Scores, evaluate_gates
from mlops_pipeline.failures import PermanentFailure

if TYPE_CHECKING:
    from mlops_pipeline.usecases.spec import UseCaseSpec

LATENCY_CALLS = 200
# The run's artifact folder of decision records.
DECISIONS_ARTIFACTS = "decisions"
MLFLOW_TYPES = {"category": "string", "bool": "boolean", "number": "double"}


class DeploymentError(PermanentFailure):
    """A deployment step could not complete as required (verification, missing model)."""


@dataclass
class ModelScore:
    version: str
    run_id: str
    threshold: float | None  # None for a regressor
    scores: Scores

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "threshold": self.threshold,
            "metrics": dict(self.scores.metrics),
            "segments": {k: list(v) for k, v in self.scores.segments.items()},
            "p99_latency_ms": self.scores.p99_latency_ms,
            "model_size_mb": self.scores.model_size_mb,
            "signature_compatible": self.scores.signature_compatible,
        }


@dataclass
class Holdout:
    start: dt.date
    end: dt.date
    rows: int
    partitions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": f"{self.start.isoformat()}..{self.end.isoformat()}",
            "rows": self.rows,
            "partitions": [
                {k: p.get(k) for k in ("date", "validation_id", "content_sha256")}
                for p in self.partitions
            ],
        }


def serving_schema(spec: UseCaseSpec) -> dict[str, str]:
    """Input column -> MLflow type the serving app sends (``training.model_inputs``)."""
    from mlops_pipeline.training.model import input_kinds

    return {name: MLFLOW_TYPES[kind] for name, kind in input_kinds(spec).items()}


def holdout_window(tracking: Any, run_id: str) -> tuple[dt.date, dt.date]:
    """The challenger's test days: labelled, recent, and unseen by the challenger. The older
    champion's training window ended before them, so they are unseen by it too."""
    window = tracking.get_run(run_id).data.params["window_test"]
    start, end = window.split("..")
    return dt.date.fromisoformat(start), dt.date.fromisoformat(end)


def _load(name: str, version: str) -> tuple[Any, float]:
    import mlflow

    local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}")
    size_mb = sum(p.stat().st_size for p in Path(local).rglob("*") if p.is_file()) / 2**20
    return mlflow.pyfunc.load_model(local), size_mb


def version_threshold(spec: UseCaseSpec, model: Any, version: str) -> float | None:
    """A classifier version's own decision threshold (from its metadata); None for a
    regressor."""
    if not spec.is_classifier:
        return None
    metadata = model.metadata.metadata or {}
    if metadata.get("threshold") is None:
        raise DeploymentError(f"{spec.model_name} v{version} has no threshold in its metadata")
    return float(metadata["threshold"])


def holdout_scores(spec: UseCaseSpec, model: Any, inputs: Any) -> np.ndarray:
    """What the pyfunc model answers, as scores: the positive-class probability of a
    classifier (``predict_proba``), the prediction of a regressor (``predict``)."""
    answer = np.asarray(model.predict(inputs), dtype="float64")
    return answer[:, 1] if spec.is_classifier else answer.reshape(-1)


def score_model(spec: UseCaseSpec, version: Any, holdout_frame: Any) -> ModelScore:
    from mlops_pipeline.training.model import evaluation_metrics, model_inputs

    model, size_mb = _load(spec.model_name, str(version.version))
    threshold = version_threshold(spec, model, str(version.version))
    inputs = model_inputs(spec, holdout_frame)
    scores = holdout_scores(spec, model, inputs)
    labels = holdout_frame[spec.label].to_numpy()
    metrics = evaluation_metrics(spec, labels, scores, threshold)
    segments = {}
    for column in spec.segments:
        values = holdout_frame[column].astype(str)
        for value in sorted(values.unique()):
            mask = (values == value).to_numpy()
            if len(np.unique(labels[mask])) >= 2:
                segment = evaluation_metrics(spec, labels[mask], scores[mask], threshold)
                segments[f"{column}={value}"] = (int(mask.sum()), segment[spec.primary_metric])
    from threadpoolctl import threadpool_limits

    from mlops_pipeline.serving.scorer import scorer_for

    # Timed as served: the model server's scorer (compiled when exact), one OpenMP thread
    # (`mlops-pipeline serve` sets it; on a busy machine the trees' OpenMP threads otherwise
    # wait on each other for seconds per single-row call).
    scorer = scorer_for(model.get_raw_model(), spec)
    one_row = inputs.head(1).to_dict("list")
    timings = []
    with threadpool_limits(limits=1, user_api="openmp"):
        for _ in range(LATENCY_CALLS):
            started = time.perf_counter()
            scorer.score(one_row)
            timings.append((time.perf_counter() - started) * 1000)
    schema = model.metadata.get_input_schema()
    declared = {col.name: col.type.name for col in schema.inputs} if schema else {}
    return ModelScore(
        version=str(version.version),
        run_id=version.run_id,
        threshold=threshold,
        scores=Scores(
            metrics=metrics,
            segments=segments,
            p99_latency_ms=float(np.percentile(timings, 99)),
            model_size_mb=size_mb,
            signature_compatible=declared == serving_schema(spec),
        ),
    )


@dataclass
class Evaluation:
    model_name: str
    challenger: ModelScore
    champion: ModelScore | None
    holdout: Holdout
    report: GateReport

    def to_dict(self) -> dict[str, Any]:
        as_dict = {
            "model_name": self.model_name,
            "challenger": self.challenger.to_dict(),
            "champion": self.champion.to_dict() if self.champion else None,
            "holdout": self.holdout.to_dict(),
            "gates": self.report.to_dict(),
        }
        # What an approver reads in the Airflow UI before deciding.
        as_dict["report_markdown"] = decision_markdown(
            decision_record(
                "promote", "awaiting decision", self.model_name, self.challenger.version, as_dict
            )
        )
        return as_dict


def gate_config(settings: Settings) -> GateConfig:
    """The gates the use case declares (``gates`` in its ``usecase.yaml``)."""
    return GateConfig.from_spec(settings.spec)


def evaluate_challenger(
    settings: Settings, version: str | None = None, config: GateConfig | None = None
) -> Evaluation:
    """Re-score challenger and champion on the same holdout and run the gates (``config``:
    default ``gate_config(settings)``)."""
    from mlops_pipeline.features.access import build_training_set

    spec = settings.spec
    config = config or gate_config(settings)
    tracking = registry.client(settings)
    name = spec.model_name
    challenger = (
        tracking.get_model_version(name, version)
        if version
        else registry.version_for_alias(tracking, name, registry.CHALLENGER)
    )
    if challenger is None:
        raise DeploymentError(f"{name} has no version {version or '@' + registry.CHALLENGER}")
    champion = registry.version_for_alias(tracking, name, registry.CHAMPION)
    if champion is not None and str(champion.version) == str(challenger.version):
        raise DeploymentError(f"{name} v{challenger.version} is already the champion")
    start, end = holdout_window(tracking, challenger.run_id)
    frame = build_training_set(settings, start, end)
    holdout = Holdout(start, end, len(frame.frame), frame.partitions)
    if frame.frame.empty:
        raise DeploymentError(f"{name}: the holdout {start}..{end} holds no rows")
    challenger_score = score_model(spec, challenger, frame.frame)
    champion_score = score_model(spec, champion, frame.frame) if champion else None
    report = evaluate_gates(
        challenger_score.scores, champion_score.scores if champion_score else None, config
    )
    return Evaluation(name, challenger_score, champion_score, holdout, report)


def promote(settings: Settings, version: str) -> dict[str, str | None]:
    """``previous_champion`` -> the old champion, then ``champion`` -> ``version``; re-read
    both and verify."""
    tracking = registry.client(settings)
    name = settings.spec.model_name
    old = registry.version_for_alias(tracking, name, registry.CHAMPION)
    if old is not None:
        tracking.set_registered_model_alias(name, registry.PREVIOUS_CHAMPION, str(old.version))
    tracking.set_registered_model_alias(name, registry.CHAMPION, str(version))
    _verify(tracking, name, registry.CHAMPION, str(version))
    if old is not None:
        _verify(tracking, name, registry.PREVIOUS_CHAMPION, str(old.version))
    return {"champion": str(version), "previous_champion": str(old.version) if old else None}


def rollback(settings: Settings, target: str = registry.PREVIOUS_CHAMPION) -> dict[str, str]:
    """Point ``champion`` at ``target`` (a version number or an alias); the replaced champion
    becomes ``previous_champion``, so a rollback can itself be undone."""
    tracking = registry.client(settings)
    name = settings.spec.model_name
    current = registry.version_for_alias(tracking, name, registry.CHAMPION)
    if target.isdigit():
        wanted = tracking.get_model_version(name, target)
    else:
        wanted = registry.version_for_alias(tracking, name, target)
    if wanted is None:
        raise DeploymentError(f"{name} has no version or alias {target!r} to roll back to")
    if current is not None and str(current.version) == str(wanted.version):
        raise DeploymentError(f"{name} v{wanted.version} is already the champion")
    tracking.set_registered_model_alias(name, registry.CHAMPION, str(wanted.version))
    if current is not None:
        tracking.set_registered_model_alias(name, registry.PREVIOUS_CHAMPION, str(current.version))
    _verify(tracking, name, registry.CHAMPION, str(wanted.version))
    return {
        "champion": str(wanted.version),
        "previous_champion": str(current.version) if current else "",
    }


def _verify(tracking: Any, name: str, alias: str, version: str) -> None:
    found = registry.version_for_alias(tracking, name, alias)
    if found is None or str(found.version) != version:
        raise DeploymentError(
            f"{name}@{alias} reads back as {found.version if found else None}, not {version}"
        )


def write_decision_record(
    settings: Settings,
    record: dict[str, Any],
    attach_to_run: str | None,
) -> Path:
    """Keep the record under the use case's ``settings.decisions_dir`` (JSON and Markdown) and
    log both on the challenger's run."""
    folder = settings.decisions_dir
    folder.mkdir(parents=True, exist_ok=True)
    stamp = record["decided_at"].replace(":", "").replace("-", "")
    stem = f"{stamp}-{record['action']}-v{record.get('version')}"
    json_path = folder / f"{stem}.json"
    json_path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    (folder / f"{stem}.md").write_text(decision_markdown(record))
    if attach_to_run:
        tracking = registry.client(settings)
        tracking.log_artifact(attach_to_run, str(json_path), DECISIONS_ARTIFACTS)
        tracking.log_artifact(attach_to_run, str(folder / f"{stem}.md"), DECISIONS_ARTIFACTS)
    return json_path


def decision_markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# {record['action'].capitalize()}: {record['model_name']} v{record.get('version')}",
        "",
        f"- Outcome: **{record['outcome']}**",
        f"- Decided at: {record['decided_at']} by {record.get('decided_by', 'gates')}",
    ]
    airflow = record.get("airflow") or {}
    if airflow:  # the approver's copy is rendered before the run records itself
        lines.append("- Airflow: " + ", ".join(f"{k} `{v}`" for k, v in sorted(airflow.items())))
    evaluation = record.get("evaluation")
    if evaluation:
        champion = evaluation.get("champion")
        holdout = evaluation["holdout"]
        lines += [
            f"- Holdout: {holdout['window']} ({holdout['rows']:,} rows)",
            f"- Challenger: v{evaluation['challenger']['version']}",
            f"- Champion: {('v' + champion['version']) if champion else 'none (first model)'}",
            "",
            "| gate | value | threshold | verdict |",
            "|---|---|---|---|",
        ]
        for check in evaluation["gates"]["checks"]:
            verdict = "pass" if check["passed"] else "FAIL"
            lines.append(
                f"| {check['name']} | {_fmt(check['value'])} | {_fmt(check['threshold'])} | "
                f"{verdict} |"
            )
    if record.get("reasons"):
        lines += ["", "Reasons:", *[f"- {reason}" for reason in record["reasons"]]]
    if record.get("aliases"):
        lines += ["", f"Aliases after: {record['aliases']}"]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "none"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def tag_decision(settings: Settings, version: str, outcome: str, reasons: list[str]) -> None:
    tracking = registry.client(settings)
    name = settings.spec.model_name
    tracking.set_model_version_tag(name, version, f"{registry.TAG_PREFIX}decision", outcome)
    tracking.set_model_version_tag(
        name, version, f"{registry.TAG_PREFIX}decision_reasons", "; ".join(reasons)[:4000]
    )


def decision_record(
    action: str,
    outcome: str,
    model_name: str,
    version: str | None,
    evaluation: dict[str, Any] | None = None,
    reasons: list[str] | None = None,
    aliases: dict[str, Any] | None = None,
    decided_by: str = "gates",
    airflow: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "action": action,
        "outcome": outcome,
        "model_name": model_name,
        "version": version,
        "decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "decided_by": decided_by,
        "evaluation": evaluation,
        "reasons": reasons or [],
        "aliases": aliases or {},
        "airflow": airflow or {},
    }


def decision_records(settings: Settings, limit: int = 5) -> list[tuple[Path, dict[str, Any]]]:
    """The newest decision records in full, newest first, with their JSON files."""
    folder = settings.decisions_dir
    if not folder.exists():
        return []
    paths = sorted(folder.glob("*.json"))[-limit:]
    return [(p, json.loads(p.read_text())) for p in reversed(paths)]


def latest_decisions(settings: Settings, limit: int = 5) -> list[dict[str, Any]]:
    return [
        {k: r.get(k) for k in ("decided_at", "action", "outcome", "version", "reasons")}
        for _, r in decision_records(settings, limit)
    ]


class SmokeTestFailed(PermanentFailure):
    """The serving endpoint did not serve the promoted version in time."""


def smoke_test(settings: Settings, version: str) -> dict[str, Any]:
    """Ask the running model server for ``version`` until the timeout: ``GET /model`` must
    report it, ``POST /predict`` (one entity, features from the online store) must answer
    with it and ``/metrics`` must show no worker still serving another version (a server with
    several workers swaps each on its own)."""
    import httpx

    from mlops_pipeline.serving.metrics import served_versions

    request = smoke_request(settings.spec)
    base = settings.model_server_url.rstrip("/")
    deadline = time.monotonic() + settings.smoke_timeout_seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            served = httpx.get(f"{base}/model", timeout=5).json().get("version")
            if served == version:
                answer = httpx.post(f"{base}/predict", json=request, timeout=10)
                if answer.status_code == 200 and answer.json()["model_version"] == version:
                    exposition = httpx.get(f"{base}/metrics", timeout=5).text
                    others = served_versions(exposition, registry.CHAMPION) - {version}
                    if not others:
                        return {"url": base, "version": version, "status": answer.status_code}
                    last = f"workers still serve version(s) {', '.join(sorted(others))}"
                else:
                    last = f"/predict answered {answer.status_code}: {answer.text[:200]}"
            else:
                last = f"/model serves version {served}"
        except (httpx.HTTPError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(1)
    raise SmokeTestFailed(
        f"{base} did not serve version {version} within {settings.smoke_timeout_seconds:.0f} s "
        f"(last: {last})"
    )


def smoke_request(spec: UseCaseSpec) -> dict[str, Any]:
    """The smoke test's ``/predict`` body: one entity by key (an unknown one is answered under
    ``unknown``, which still proves the version answers)."""
    key = spec.entity.key
    lowest = spec.column(key).min
    return {"entities": {key: [int(lowest) if lowest is not None else 1]}}


def undo_promotion(settings: Settings, aliases: dict[str, str | None]) -> dict[str, str | None]:
    """Put ``champion`` back where it was before ``promote`` (or remove it for a first model)."""
    tracking = registry.client(settings)
    name = settings.spec.model_name
    previous = aliases.get("previous_champion")
    if previous:
        tracking.set_registered_model_alias(name, registry.CHAMPION, previous)
        _verify(tracking, name, registry.CHAMPION, previous)
    else:
        tracking.delete_registered_model_alias(name, registry.CHAMPION)
    return {"champion": previous, "rolled_back_from": aliases.get("champion")}


def record_decision(
    settings: Settings,
    evaluation: dict[str, Any],
    outcome: str,
    airflow: dict[str, str],
    reasons: list[str] | None = None,
    aliases: dict[str, Any] | None = None,
    decided_by: str = "gates",
) -> Path:
    """Tag the challenger version with the outcome and write its decision record."""
    version = evaluation["challenger"]["version"]
    tag_decision(settings, version, outcome, reasons or [])
    record = decision_record(
        "promote",
        outcome,
        evaluation["model_name"],
        version,
        evaluation,
        reasons=reasons,
        aliases=aliases,
        decided_by=decided_by,
        airflow=airflow,
    )
    return write_decision_record(settings, record, evaluation["challenger"]["run_id"])
