"""The ``doc_md`` of each generated DAG, written from the use case's declaration: the UI shows
what the DAG does for this model, what triggers it and what it produces.

Cheap on purpose (string formatting only): the DAG factory calls it at parse time.
"""

from __future__ import annotations

from mlops_pipeline.config import Settings
from mlops_pipeline.orchestration.assets import UseCaseAssets
from mlops_pipeline.orchestration.schedules import drift_schedule
from mlops_pipeline.usecases.loader import UseCase


def _about(spec: UseCase) -> str:
    task = "binary classifier" if spec.is_classifier else "regression model"
    return (
        f"Use case **{spec.name}** (owner `{spec.owner}`): the {task} `{spec.model_name}` "
        f"predicts `{spec.label}` per {spec.entity.name} (`{spec.entity.key}`) from the "
        f"`{spec.dataset}` data, one partition per {_partition(spec)}. "
        f"Declared in `usecases/{spec.name}/usecase.yaml`.\n\n> {spec.description}"
    )


def _drift_schedule(spec: UseCase, settings: Settings) -> str:
    schedule = drift_schedule(settings, spec.cadence)
    if schedule == settings.drift_schedule:
        return f"`MLOPS_DRIFT_SCHEDULE` (`{schedule}` UTC)"
    return f"`{schedule}` UTC (every hour, for an hourly use case)"


def _partition(spec: UseCase) -> str:
    return {"daily": "day", "weekly": "week", "hourly": "hour"}[spec.cadence.value]


def ingest_doc(spec: UseCase, settings: Settings, assets: UseCaseAssets) -> str:
    part = _partition(spec)
    return f"""
### {spec.name}: ingest `{spec.dataset}`

{_about(spec)}

Every {part} (data intervals of `{spec.cadence.cron}` UTC), for the run's interval: waits for the
{part}'s file in the landing zone (`MLOPS_HOME/landing/{spec.dataset}`, up to
`MLOPS_LANDING_WAIT_TIMEOUT_SECONDS`), validates it with the Great Expectations suite built
from the declared contract ({len(spec.columns)} columns: kinds, ranges, value sets, nulls,
unique `{spec.entity.key}` per partition), writes the clean rows to the validated lake partition
(replacing it whole) and the failing rows to quarantine with the names of the expectations they
failed.

- **Fails without retries** when the file is unreadable, empty, breaks the schema, or more than
  `MLOPS_MAX_BAD_ROW_FRACTION` of its rows fail row-level expectations.
- **Never touches** the landed file.
- **Emits** the Asset `{assets.validated_data.name}` on success, with the date, row and
  quarantine counts and the validation id in its `extra`.
- Validation results (JSON) and Data Docs are kept under `MLOPS_HOME/reports` for every run.

Backfill a range with `airflow backfill create --dag-id {spec.name}__ingest ...`.
"""


def materialize_doc(spec: UseCase, settings: Settings, assets: UseCaseAssets) -> str:
    views = ", ".join(f"`{v}`" for v in spec.feature_views)
    return f"""
### {spec.name}: materialize features

{_about(spec)}

Runs when `{spec.name}__ingest` emits the Asset `{assets.validated_data.name}`, for exactly the
partitions named by the triggering events (several may have queued), with a small overlap
(`MLOPS_MATERIALIZE_OVERLAP_MINUTES`) for late rows:

1. **register_definitions** applies the Feast definitions generated from the declaration
   (project `{settings.feast_project}`, entity `{spec.entity.name}`, views {views}, service
   `{spec.features.service}`) only when they changed: re-applying unchanged views would reset
   their materialization state.
2. **materialize** writes the interval to the online store. An interval older than what is
   already online never overwrites newer values.
3. **check_online** reads a sample of the partition's `{spec.entity.key}`s back through the
   feature service `{spec.features.service}` and fails if they are not served that
   partition's (or a later one's) values.
4. Emits the Asset `{assets.features_online.name}`.

Trigger it by hand for a backfill with `{{"dates": ["2025-06-02", "2025-06-03"]}}`. A rejected
ingestion emits no asset event and has no lake partition, so it is never materialized.
"""


def train_doc(spec: UseCase, settings: Settings, assets: UseCaseAssets) -> str:
    split = spec.training.split
    metrics = ", ".join(f"`{g.metric}`" for g in spec.gate_metrics)
    return f"""
### {spec.name}: train `{spec.model_name}`

{_about(spec)}

Trains a new version of `{spec.model_name}` ({spec.training.model.family}) and points the
MLflow alias `challenger` at it.

**Triggers** (one run at a time):
- the Asset `{assets.features_online.name}` (new features materialized): trains only when the
  data window moved at least {spec.training.retrain_every_partitions} partitions
  (`training.retrain_every_partitions`) since the last trained version, and once the window
  holds the {split.partitions_needed} validated partitions a time split needs;
- the Asset `{assets.retrain_requested.name}` (drift monitoring): always trains;
- a manual run, with a window end and a reason (everything else is the declaration's).

**What it records**: the training set ({split.window_partitions} partitions: train, then
{split.validation_partitions} validation and {split.test_partitions} test partitions) comes only
from the Feast feature service `{spec.features.service}` (point-in-time correct). The MLflow
run (experiment `{spec.training_experiment}`) logs parameters, test metrics ({metrics}) overall
and per segment, the model with signature and input example, the training data with the
content hash of every lake partition used, the training reference sample for drift
monitoring, a model card, and lineage tags (code version, Airflow run, validation ids, feature
service and views, data window, reason).

**Emits** the Asset `{assets.challenger.name}` with the version in `extra`.

Too little data (fewer than {spec.training.min_train_rows} training rows), a bad label or a
use-case transform that raises fails at once (no retries); an unreachable tracking server is
retried with backoff.
"""


def deploy_doc(spec: UseCase, settings: Settings, assets: UseCaseAssets) -> str:
    floors = ", ".join(
        f"`{g.metric}` {'>=' if g.higher_is_better else '<='} {g.bound:g}"
        for g in spec.gate_metrics
    )
    return f"""
### {spec.name}: deploy `{spec.model_name}` (gated)

{_about(spec)}

Runs when `{spec.name}__train` emits the Asset `{assets.challenger.name}` (or by hand with a
`version`), one run at a time:

1. **evaluate** re-scores the challenger and the current champion on the **same** frozen
   holdout (the challenger's test partitions, read through the feature service) and runs the
   declared gates: quality floors ({floors}), no regression beyond a margin on any gated
   metric, strict improvement on `{spec.primary_metric}` (ties keep the champion), no segment
   regressing beyond {spec.gates.segment_max_abs_regression:g}, p99 single-row latency
   ({spec.gates.p99_latency_budget_ms:g} ms) and model size
   ({spec.gates.model_size_budget_mb:g} MB) budgets, and a signature the serving schema accepts.
   The first model only has to clear the floors and budgets.
2. With `MLOPS_REQUIRE_APPROVAL=true`, a passing challenger waits in **approve** (Airflow's
   human-in-the-loop approval: the UI's Required Actions show the gate report); "Reject" skips
   the promotion and is recorded with the approver's name.
   **promote** (gates passed, approved): `previous_champion` -> the old champion, `champion` ->
   the challenger, both re-read and verified. **reject** (gates failed): the challenger version
   is tagged with the reasons; the champion is untouched.
   With `MLOPS_SERVING_URL` set, a smoke test then asks the running model server for the new
   version until `MLOPS_SMOKE_TIMEOUT_SECONDS`; if it does not serve it, the aliases are put
   back and the run fails with the reason. With `MLOPS_MODEL_SERVER_CONTAINER` set (Docker
   Compose), **restart_model_server** restarts that container so it loads the new champion at
   once; skipped otherwise.
3. Either way a **decision record** (JSON and Markdown) is logged on the challenger's run and
   kept under `MLOPS_HOME/reports/decisions/{spec.name}`.

Alias moves run in the one-slot pool `model_alias_writes`.
"""


def rollback_doc(spec: UseCase, settings: Settings, assets: UseCaseAssets) -> str:
    return f"""
### {spec.name}: roll back `{spec.model_name}`

{_about(spec)}

Manual only. Points the MLflow alias `champion` of `{spec.model_name}` at `target` (a version
number, or an alias; default `previous_champion`) and makes the replaced champion the new
`previous_champion`, so a rollback can itself be undone. Re-reads the alias to verify it, and
writes a decision record (`MLOPS_HOME/reports/decisions/{spec.name}`, and on the target
version's run). Runs in the one-slot pool `model_alias_writes`.
"""


def monitor_drift_doc(spec: UseCase, settings: Settings, assets: UseCaseAssets) -> str:
    drift = spec.drift
    return f"""
### {spec.name}: monitor drift (nightly)

{_about(spec)}

At {_drift_schedule(spec, settings)} checks the **last completed
{_partition(spec)}** (from the run's data interval, never "now", so a re-run or a backfill
checks the same partition) against the current `champion` of `{spec.model_name}`:

- **data drift** of the partition's validated features against the champion's training
  reference, with Evidently (`{drift.numerical_method}` for numbers, threshold
  {drift.numerical_threshold:g}; `{drift.categorical_method}` for categories, threshold
  {drift.categorical_threshold:g}; per-column overrides in the declaration's `drift`);
- **prediction drift** of `{spec.serving.score_field}`, from the model server's prediction log,
  else from the partition's batch predictions (`{spec.name}__score`), else from scoring the
  partition with the champion when it was not scored by that version;
- **performance**: the champion's `{spec.primary_metric}` on the partition's labelled rows
  against its test value.

It keeps an HTML report and a JSON summary under `MLOPS_HOME/reports/drift/{spec.name}/`, logs
both to the MLflow experiment `{spec.monitoring_experiment}`, and exports the figures as a
Prometheus textfile.

**Decides** whether to retrain: a share of drifting features of at least
{drift.share_threshold:g} or a `{spec.primary_metric}` drop of
{drift.performance_drop_threshold:g} on at least {drift.nights_required} of the last
{drift.nights_window} nights, on a partition of at least {drift.min_partition_rows} rows, and no
retrain requested within {drift.cooldown_partitions} partitions, unless the drop exceeds
{drift.hard_drop_threshold:g}. Only then **emits** the Asset `{assets.retrain_requested.name}`
(reason and figures in `extra`), which triggers `{spec.name}__train`.

A partition without validated data or a champion without a reference fails without retries;
an unreachable tracking server is retried. Manual run: `{{"date": "2025-06-11"}}`.
"""


def score_doc(spec: UseCase, settings: Settings, assets: UseCaseAssets) -> str:
    part = _partition(spec)
    decision = (
        f", the decision `decision` (score at or above the version's threshold, as "
        f"`{spec.serving.decision_field}` is served)"
        if spec.is_classifier
        else ""
    )
    return f"""
### {spec.name}: batch scoring

{_about(spec)}

Every {part} (data intervals of `{spec.cadence.cron}` UTC, like `{spec.name}__ingest`), scores
the run's partition with the current `champion` of `{spec.model_name}`:

1. **wait_for_partition** fails at once when there is no champion (waiting would not promote
   one), and otherwise waits (reschedule mode, up to `MLOPS_SCORING_WAIT_TIMEOUT_SECONDS`) until
   the partition of `{spec.dataset}` is validated and every feature view of the service is
   materialized over it, logging what it still waits for.
2. **score** reads the partition's `{spec.entity.key}`s and timestamps, joins them point in time
   to the feature service the champion was trained on (`{spec.features.service}` unless its
   version says otherwise: values as of each row's timestamp, never later) and writes one row
   per {spec.entity.name}: key, timestamp, `score`{decision}, model name and version, feature
   service and Airflow run id, to `MLOPS_HOME/batch_predictions/{spec.name}/date=<key>/part.parquet`
   (replaced whole; the same run writes the same bytes). In the production profile the same
   rows replace the partition's in the Postgres table `MLOPS_PREDICTIONS_TABLE` in one
   transaction.
3. **Emits** the Asset `{assets.predictions.name}` with the partition, rows and model version in
   `extra`.

The nightly `{spec.name}__monitor_drift` reads these predictions instead of scoring the
partition itself. Backfill a range with `airflow backfill create --dag-id {spec.name}__score
--from-date ... --to-date ...`.
"""
