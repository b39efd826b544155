"""The declaration of one use case: what the platform needs to know about a model and its data.

A use case is a folder (``usecases/<name>/``) holding ``usecase.yaml``, validated here with
pydantic, and optional Python for custom feature transforms. Everything that is about one model
(its columns, features, split, model family, gates, drift policy, serving fields) is declared
there; the platform's code reads it from the validated spec and names no use case itself.

Defaults live here and only here: the gate floors and margins per task type, the drift policy,
the time split. A bad spec lists every problem at once, each naming its field.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, model_validator

from mlops_pipeline.usecases.gate_spec import (
    DEFAULT_GATES,
    PRIMARY_METRIC,
    GatesSpec,
    MetricGateSpec,
)
from mlops_pipeline.usecases.vocabulary import (
    NAME_PATTERN,
    Cadence,
    Duplicates,
    Kind,
    Strict,
    Task,
)


class ColumnSpec(Strict):
    kind: Kind
    description: str = ""
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = Field(
        default=None, description="Allowed values of a category column (None: any string)."
    )
    nullable: bool = Field(default=False, description="May the column be empty in a row?")
    null_markers: tuple[str, ...] = Field(
        default=(),
        description="Cell texts the feed writes for a missing value (e.g. 'n/a', '-'), read as "
        "nulls (an empty cell always is one); in a number column a marker that is a number "
        "(e.g. '-999') also matches that number. Anything else that does not parse as the "
        "column's kind rejects the batch.",
    )

    def problems(self) -> list[str]:
        """What is inconsistent in this column's declaration (checked with the whole spec, so
        they are listed together with every other problem)."""
        problems = []
        if self.values is not None and self.kind is not Kind.CATEGORY:
            problems.append("`values` are for category columns only")
        if (self.min is not None or self.max is not None) and self.kind not in (
            Kind.INT,
            Kind.FLOAT,
        ):
            problems.append("`min`/`max` are for int and float columns only")
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append(f"min {self.min} is above max {self.max}")
        if self.values is not None and len(set(self.values)) != len(self.values):
            problems.append("`values` repeat a value")
        problems += self._marker_problems()
        return problems

    def _marker_problems(self) -> list[str]:
        markers = self.null_markers
        problems = []
        if markers and self.kind is Kind.TIMESTAMP:
            problems.append("`null_markers` are not for the timestamp column, which is never empty")
        if "" in markers:
            problems.append("`null_markers`: an empty cell is always a null, do not list ''")
        if len(set(markers)) != len(markers):
            problems.append("`null_markers` repeat a marker")
        clash = sorted(set(markers) & set(self.values or ()))
        if clash:
            problems.append(f"`null_markers` {clash} are also allowed `values`")
        if self.kind in (Kind.INT, Kind.FLOAT):
            for marker in markers:
                number = _number(marker)
                if number is None:
                    continue
                if self.kind is Kind.INT and not number.is_integer():
                    problems.append(f"`null_markers`: {marker!r} can never be in an int column")
                elif (self.min is not None or self.max is not None) and (
                    (self.min is None or self.min <= number)
                    and (self.max is None or number <= self.max)
                ):
                    problems.append(
                        f"`null_markers`: {marker!r} is inside the column's range, so a real "
                        "value could never be told from a missing one"
                    )
        return problems

    @property
    def numeric_markers(self) -> tuple[float, ...]:
        """The markers that are numbers (a number column's marker matches them as numbers)."""
        if self.kind not in (Kind.INT, Kind.FLOAT):
            return ()
        return tuple(n for marker in self.null_markers if (n := _number(marker)) is not None)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # "nan" is no number to match


class EntitySpec(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="The Feast entity's name.")
    key: str = Field(description="The join key column (an int column of the contract).")
    description: str = ""
    duplicates: Duplicates = Field(
        default=Duplicates.KEEP_LATEST,
        description="A second row of one entity in a partition: keep_latest quarantines the "
        "entity's older snapshots, reject every row after its first. Exact copies of a row are "
        "quarantined either way, the first kept.",
    )


class FeatureViewSpec(Strict):
    features: tuple[str, ...] = Field(min_length=1)
    ttl: dt.timedelta = Field(description="How old a value may be and still be served.")
    description: str = ""


class OnDemandSpec(Strict):
    """A Python-mode Feast on-demand view: ``function`` in the use case's ``transforms.py``
    gets the views' columns as lists and returns the ``outputs`` as lists."""

    function: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    outputs: dict[str, Literal["int", "float", "bool", "category"]] = Field(min_length=1)
    description: str = ""


class FeaturesSpec(Strict):
    views: dict[str, FeatureViewSpec] = Field(min_length=1)
    on_demand: dict[str, OnDemandSpec] = Field(default_factory=dict)
    service: str = Field(pattern=NAME_PATTERN, description="The versioned feature service.")
    service_description: str = ""


class SplitSpec(Strict):
    """The time split, counted in partitions of the use case's cadence."""

    validation_partitions: int = Field(default=3, ge=1)
    test_partitions: int = Field(default=3, ge=1)
    window_partitions: int = Field(
        default=28, ge=3, description="Partitions in a training window (train+validation+test)."
    )
    min_train_partitions: int = Field(default=1, ge=1)

    @property
    def partitions_needed(self) -> int:
        return self.validation_partitions + self.test_partitions + self.min_train_partitions


class ModelSpec(Strict):
    family: Literal["hist_gradient_boosting"] = "hist_gradient_boosting"
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    calibration: Literal["isotonic", "sigmoid", "none"] = Field(
        default="isotonic", description="Classifiers: how probabilities are calibrated."
    )
    seed: int = 42


class TrainingSpec(Strict):
    split: SplitSpec = SplitSpec()
    model: ModelSpec = ModelSpec()
    min_train_rows: int = Field(default=1_000, ge=10)
    retrain_every_partitions: int = Field(
        default=7,
        ge=0,
        description="Fresh features retrain only when the data window moved this many "
        "partitions since the last trained version (drift and manual runs always train).",
    )
    set_chunk_rows: int = Field(
        default=100_000,
        ge=1,
        description="Entity rows per point-in-time join when building a training set.",
    )


class DriftSpec(Strict):
    numerical_method: str = Field(
        default="wasserstein",
        description="Evidently drift method for numbers: a distance, not a p-value test (on "
        "large partitions every p-value test flags differences too small to matter).",
    )
    numerical_threshold: float = Field(default=0.1, gt=0)
    categorical_method: str = "jensenshannon"
    categorical_threshold: float = Field(default=0.1, gt=0)
    column_methods: dict[str, str] = Field(default_factory=dict)
    column_thresholds: dict[str, float] = Field(default_factory=dict)
    share_threshold: float = Field(
        default=0.2, gt=0, le=1, description="A night drifts when this share of features drift."
    )
    performance_drop_threshold: float = Field(
        default=0.05,
        ge=0,
        description="A night drifts when the primary metric on the partition's labels is "
        "this much worse than at test time (relative for regression error metrics).",
    )
    hard_drop_threshold: float = Field(
        default=0.1, ge=0, description="Retrain at once, ignoring cooldown and persistence."
    )
    nights_required: int = Field(default=2, ge=1)
    nights_window: int = Field(default=3, ge=1)
    min_partition_rows: int = Field(
        default=1_000, ge=1, description="Smaller partitions: drift is reported, never acted on."
    )
    cooldown_partitions: int = Field(default=3, ge=0)


class ServingSpec(Strict):
    score_field: str = Field(
        default="score",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Response field of the model's output (probability or predicted value).",
    )
    decision_field: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Classifiers: the response field of the thresholded decision.",
    )
    max_batch: int = Field(default=1_000, ge=1)


class UseCaseSpec(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=1, description="What the model is for (model card).")
    owner: str = "ml-platform"
    task: Task
    entity: EntitySpec
    timestamp: str
    label: str
    dataset: str = Field(pattern=NAME_PATTERN, description="The landing dataset's name.")
    cadence: Cadence = Field(
        default=Cadence.DAILY,
        description="Partition cadence: hourly, daily or weekly (weeks from Monday 00:00 UTC).",
    )
    columns: dict[str, ColumnSpec] = Field(min_length=3)
    features: FeaturesSpec
    training: TrainingSpec = TrainingSpec()
    segments: tuple[str, ...] = ()
    protected_attributes: tuple[str, ...] = ()
    gates: GatesSpec = GatesSpec()
    drift: DriftSpec = DriftSpec()
    serving: ServingSpec = ServingSpec()
    registered_model_name: str | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> UseCaseSpec:
        problems: list[str] = []
        columns = self.columns
        for name, column in columns.items():
            problems += [f"columns.{name}: {problem}" for problem in column.problems()]

        def need(field: str, name: str, kinds: tuple[Kind, ...] | None = None) -> None:
            if name not in columns:
                problems.append(f"{field}: {name!r} is not a declared column")
            elif kinds and columns[name].kind not in kinds:
                allowed = " or ".join(k.value for k in kinds)
                problems.append(f"{field}: column {name!r} is {columns[name].kind}, not {allowed}")
            elif field != "label" and columns[name].nullable:
                problems.append(f"{field}: column {name!r} may not be nullable")

        need("entity.key", self.entity.key, (Kind.INT,))
        need("timestamp", self.timestamp, (Kind.TIMESTAMP,))
        label_kinds = (
            (Kind.INT, Kind.BOOL)
            if self.task is Task.BINARY_CLASSIFICATION
            else (Kind.INT, Kind.FLOAT)
        )
        need("label", self.label, label_kinds)
        if self.label in columns and columns[self.label].nullable:
            problems.append(f"label: column {self.label!r} may not be nullable")
        if self.task is Task.BINARY_CLASSIFICATION and self.label in columns:
            label = columns[self.label]
            if label.kind is Kind.INT and (label.min, label.max) != (0, 1):
                problems.append("label: an int label of a classifier needs min 0 and max 1")
        others = [c for c, s in columns.items() if s.kind is Kind.TIMESTAMP and c != self.timestamp]
        if others:
            problems.append(f"columns: only the event timestamp may be a timestamp, not {others}")
        reserved = {self.entity.key, self.timestamp, self.label}
        seen: dict[str, str] = {}
        for view, spec in self.features.views.items():
            for feature in spec.features:
                where = f"features.views.{view}.features"
                if feature not in columns:
                    problems.append(f"{where}: {feature!r} is not a declared column")
                elif feature in reserved:
                    problems.append(f"{where}: {feature!r} is the entity key, timestamp or label")
                if feature in seen:
                    problems.append(f"{where}: {feature!r} is already in view {seen[feature]!r}")
                seen[feature] = view
        for name, on_demand in self.features.on_demand.items():
            for output in on_demand.outputs:
                if output in columns or output in seen:
                    problems.append(
                        f"features.on_demand.{name}.outputs: {output!r} is already a feature"
                    )
        if set(self.features.views) & set(self.features.on_demand):
            problems.append("features: a view and an on-demand view share a name")
        undeclared = sorted(set(columns) - reserved - set(seen))
        if undeclared:
            problems.append(f"features.views: columns {undeclared} are in no feature view")
        for field in ("segments", "protected_attributes"):
            for name in getattr(self, field):
                if name not in columns:
                    problems.append(f"{field}: {name!r} is not a declared column")
                elif columns[name].kind not in (Kind.CATEGORY, Kind.BOOL):
                    problems.append(f"{field}: {name!r} must be a category or bool column")
        if self.task is Task.BINARY_CLASSIFICATION and self.serving.decision_field is None:
            problems.append("serving.decision_field: a classifier needs a decision field")
        if self.task is Task.REGRESSION and self.serving.decision_field is not None:
            problems.append("serving.decision_field: a regression model has no decision")
        if self.serving.score_field in columns or self.serving.score_field == self.entity.key:
            problems.append(f"serving.score_field: {self.serving.score_field!r} is a column")
        problems += [f"gates.fairness.{p}" for p in self.gates.fairness.problems(self.task)]
        gated = {g.metric for g in self.gate_metrics}
        if self.primary_metric not in gated:
            problems.append(f"gates.primary_metric: {self.primary_metric!r} is not gated")
        unknown = set(self.drift.column_methods) | set(self.drift.column_thresholds)
        unknown -= set(self.feature_columns)
        if unknown:
            problems.append(f"drift: overrides for {sorted(unknown)}, which are not features")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # Derived views of the declaration: what the stages read.

    @property
    def gate_metrics(self) -> tuple[MetricGateSpec, ...]:
        return self.gates.metrics if self.gates.metrics is not None else DEFAULT_GATES[self.task]

    @property
    def primary_metric(self) -> str:
        return self.gates.primary_metric or PRIMARY_METRIC[self.task]

    @property
    def model_name(self) -> str:
        """The registered model in MLflow."""
        return self.registered_model_name or self.name.replace("_", "-")

    @property
    def training_experiment(self) -> str:
        return f"{self.model_name}-training"

    @property
    def monitoring_experiment(self) -> str:
        return f"{self.model_name}-monitoring"

    @property
    def is_classifier(self) -> bool:
        return self.task is Task.BINARY_CLASSIFICATION

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    @cached_property
    def feature_columns(self) -> tuple[str, ...]:
        """Contract columns that are features (in declaration order)."""
        reserved = (self.entity.key, self.timestamp, self.label)
        return tuple(c for c in self.columns if c not in reserved)

    def _of_kind(self, *kinds: Kind) -> tuple[str, ...]:
        return tuple(c for c in self.feature_columns if self.columns[c].kind in kinds)

    @cached_property
    def categorical_features(self) -> tuple[str, ...]:
        return self._of_kind(Kind.CATEGORY)

    @cached_property
    def numeric_features(self) -> tuple[str, ...]:
        return self._of_kind(Kind.INT, Kind.FLOAT)

    @cached_property
    def boolean_features(self) -> tuple[str, ...]:
        return self._of_kind(Kind.BOOL)

    @cached_property
    def on_demand_features(self) -> tuple[str, ...]:
        return tuple(o for spec in self.features.on_demand.values() for o in spec.outputs)

    @cached_property
    def model_features(self) -> tuple[str, ...]:
        """The model's inputs, in order: contract features, then on-demand features."""
        return (*self.feature_columns, *self.on_demand_features)

    @cached_property
    def feature_views(self) -> tuple[str, ...]:
        return tuple(self.features.views)

    def column(self, name: str) -> ColumnSpec:
        return self.columns[name]

    def declared_names(self) -> set[str]:
        """Every name this use case declares (for the test that keeps them out of the
        platform's code)."""
        names = {
            self.entity.key,
            self.entity.name,
            self.label,
            self.dataset,
            self.features.service,
            self.serving.score_field,
            *(self.serving.decision_field or "",),
            *self.columns,
            *self.features.views,
            *self.features.on_demand,
            *self.on_demand_features,
            *(spec.function for spec in self.features.on_demand.values()),
        }
        for spec in self.columns.values():
            names.update(spec.values or ())
        return {n for n in names if n}


def model_json_schema() -> dict[str, Any]:
    return UseCaseSpec.model_json_schema()
