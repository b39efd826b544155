"""One settings object, read from environment variables with documented defaults.

Every field ``name`` is read from ``MLOPS_<NAME>`` (``MLOPS_HOME``,
``MLOPS_MAX_BAD_ROW_FRACTION`` ...) and validated by pydantic. All embedded state lives under
``MLOPS_HOME`` so a laptop run never writes anywhere else.

This is a plain pydantic model rather than pydantic-settings on purpose: DAG files read it at
parse time, and pydantic is already loaded by Airflow while pydantic-settings costs ~100 ms.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DATASET = "customer_activity"
ENV_PREFIX = "MLOPS_"
# The repository's Feast repo, for a checkout or an editable install; images set
# MLOPS_FEATURE_REPO explicitly.
_REPO_FEATURE_REPO = Path(__file__).resolve().parents[2] / "feature_repo"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    home: Path = Field(
        default=Path(".local"),
        description="Root of all embedded state: Airflow home, landing zone, lake, quarantine, "
        "reports, MLflow and Feast state.",
    )
    max_bad_row_fraction: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="A batch whose share of rows failing row-level expectations exceeds this "
        "fails as a whole instead of being split into clean and quarantined rows.",
    )
    min_batch_rows: int = Field(
        default=100, ge=0, description="Fewest rows a daily batch may hold."
    )
    max_batch_rows: int = Field(
        default=5_000_000, ge=1, description="Most rows a daily batch may hold."
    )
    landing_wait_timeout_seconds: int = Field(
        default=6 * 3600,
        ge=1,
        description="How long ingestion waits for the day's landing file before failing.",
    )
    landing_poke_interval_seconds: int = Field(
        default=300, ge=1, description="How often ingestion looks for the landing file."
    )
    build_data_docs: bool = Field(
        default=True, description="Render Great Expectations Data Docs after every validation."
    )
    rows_per_day: int = Field(default=20_000, ge=1, description="Customers per generated demo day.")
    profile: Literal["embedded", "production"] = Field(
        default="embedded",
        description="`embedded`: SQLite and files under MLOPS_HOME. `production`: Postgres "
        "(Feast registry) and Redis (online store) from the URLs below.",
    )
    feature_repo: Path = Field(
        default=_REPO_FEATURE_REPO, description="The Feast repository (definitions and YAML)."
    )
    feast_project: str = Field(
        default="churn",
        pattern=r"^[a-zA-Z0-9_]+$",
        description="Feast project; also the key prefix of the online store.",
    )
    feast_registry_url: SecretStr = Field(
        default=SecretStr(""),
        description="production: SQLAlchemy URL of the Feast registry database, e.g. "
        "`postgresql+psycopg://feast:***@db:5432/feast`.",
    )
    redis_connection: SecretStr = Field(
        default=SecretStr("localhost:6379"),
        description="production: Feast Redis connection string, `host:port[,db=0][,password=...]`.",
    )
    materialize_overlap_minutes: int = Field(
        default=60,
        ge=0,
        description="Materialization starts this long before the interval, for late rows.",
    )
    mlflow_tracking_uri: str = Field(
        default="",
        description="MLflow tracking and registry URI. Empty: the embedded SQLite store "
        "`sqlite:///$MLOPS_HOME/mlflow/mlflow.db`; production: the tracking server's URL.",
    )
    registered_model_name: str = Field(
        default="churn-classifier", description="Registered model in the MLflow registry."
    )
    training_cadence_days: int = Field(
        default=7,
        ge=0,
        description="Feature updates retrain only when the data window moved this many days "
        "since the last trained model (drift and manual runs always train).",
    )
    training_window_days: int = Field(
        default=28, ge=3, description="Days of data in a training window (train+validation+test)."
    )
    min_training_rows: int = Field(
        default=1_000, ge=10, description="Fewest training rows accepted before failing fast."
    )
    training_set_chunk_rows: int = Field(
        default=100_000,
        ge=1,
        description="Entity rows per point-in-time join when building a training set: "
        "consecutive days are joined together up to this many rows, which bounds the memory "
        "of Feast's on-demand view (it turns the whole joined table into Python objects).",
    )
    serving_poll_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the model server re-reads the `champion` alias to swap models.",
    )
    serving_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes of the model server; each loads the champion and watches "
        "its alias (one per core it may use; /metrics sums them).",
    )
    serving_url: str = Field(
        default="",
        description="Base URL of the running model server, for the post-promotion smoke test "
        "(empty: no smoke test).",
    )
    require_approval: bool = Field(
        default=False,
        description="Promotions that pass the gates also wait for a human approval in the "
        "Airflow UI (HITL), which shows the gate report.",
    )
    smoke_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="After a promotion, how long the model server has to serve the new version "
        "before the promotion is rolled back.",
    )
    p99_latency_budget_ms: float = Field(
        default=50.0,
        gt=0,
        description="Gate: the challenger's p99 single-row prediction latency, measured while "
        "deploying, must stay within this budget; set it for the machine that deploys and serves.",
    )
    online_check_sample: int = Field(
        default=200, ge=1, description="Customers checked in the online store after materializing."
    )
    drift_schedule: str = Field(
        default="0 2 * * *",
        description="Cron (UTC) of the nightly drift check; each run checks the last completed "
        "day.",
    )
    drift_numerical_method: str = Field(
        default="wasserstein",
        description="Evidently drift method for numerical columns. A distance, not a p-value "
        "test: on 20,000-row days every p-value test flags differences too small to matter.",
    )
    drift_numerical_threshold: float = Field(
        default=0.1,
        gt=0,
        description="Numerical column drifts at or above this score (Wasserstein distance in "
        "reference standard deviations).",
    )
    drift_categorical_method: str = Field(
        default="jensenshannon",
        description="Evidently drift method for categorical and boolean columns.",
    )
    drift_categorical_threshold: float = Field(
        default=0.1, gt=0, description="Categorical column drifts at or above this score."
    )
    drift_column_overrides: str = Field(
        default="",
        description="Per-column method and threshold, `column=method:threshold,...` (e.g. "
        "`monthly_charges=psi:0.2`).",
    )
    drift_share_threshold: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="A night counts as drifted when at least this share of the features drift.",
    )
    performance_drop_threshold: float = Field(
        default=0.05,
        ge=0,
        description="A night counts as drifted when the champion's ROC AUC on the day's labelled "
        "rows is this far below its test ROC AUC.",
    )
    performance_hard_drop_threshold: float = Field(
        default=0.1,
        ge=0,
        description="A ROC AUC drop this large requests retraining at once, ignoring the "
        "cooldown and the k-of-n persistence.",
    )
    drift_nights_required: int = Field(
        default=2, ge=1, description="k: drifted nights needed among the last n to retrain."
    )
    drift_nights_window: int = Field(
        default=3,
        ge=1,
        description="n: nights (calendar days, the checked one included) looked at.",
    )
    drift_min_batch_rows: int = Field(
        default=1_000,
        ge=1,
        description="Fewer rows than this in a day: drift is reported but never acted on.",
    )
    retrain_cooldown_days: int = Field(
        default=3,
        ge=0,
        description="No new retrain request within this many days of the last one (a hard "
        "performance drop overrides it).",
    )
    model_server_container: str = Field(
        default="",
        description="Docker Compose deploy target: after a promotion, `deploy_churn_model` "
        "restarts this container (name or id) through the Docker provider so it loads the new "
        "champion at once (empty: off).",
    )
    docker_url: str = Field(
        default="unix://var/run/docker.sock",
        description="Docker Engine API the deploy target talks to (the mounted socket, or a "
        "socket proxy's `tcp://` URL).",
    )

    @field_validator("home", "feature_repo")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Tasks run from other working directories; a relative home would scatter state.
        return value.expanduser().resolve()

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing" / DATASET

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake" / DATASET

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine" / DATASET

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def validations_dir(self) -> Path:
        return self.reports_dir / "validations" / DATASET

    @property
    def gx_dir(self) -> Path:
        return self.home / "gx"

    @property
    def data_docs_dir(self) -> Path:
        return self.reports_dir / "data_docs"

    @property
    def drift_reports_dir(self) -> Path:
        return self.reports_dir / "drift"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes`` applied and validated (``model_copy`` skips validation)."""
        return type(self).model_validate({**dict(self), **changes})

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (secrets included)."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[ENV_PREFIX + name.upper()] = str(value)
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in environ
        }
        return cls(**values)


def get_settings() -> Settings:
    """Fresh settings from the current environment (cheap; tests change the environment)."""
    return Settings.from_env()


def documented_variables() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the README's table."""
    return [
        (ENV_PREFIX + name.upper(), _default_text(field.default), field.description or "")
        for name, field in Settings.model_fields.items()
    ]


def _default_text(default: object) -> str:
    if isinstance(default, SecretStr):
        return default.get_secret_value() or "(unset)"
    if default == _REPO_FEATURE_REPO:
        return "<repo>/feature_repo"
    return str(default)
