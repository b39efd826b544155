"""One settings object, read from environment variables with documented defaults.

Every field ``name`` is read from ``MLOPS_<NAME>`` (``MLOPS_HOME``,
``MLOPS_MAX_BAD_ROW_FRACTION`` ...) and validated by pydantic. All embedded state lives under
``MLOPS_HOME`` so a laptop run never writes anywhere else.

This is a plain pydantic model rather than pydantic-settings on purpose: DAG files read it at
parse time, and pydantic is already loaded by Airflow while pydantic-settings is not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from mlops_pipeline.failures import SpecError

if TYPE_CHECKING:
    from mlops_pipeline.usecases.loader import UseCase

ENV_PREFIX = "MLOPS_"
# The repository's Feast repo, for a checkout or an editable install; images set
# MLOPS_FEATURE_REPO explicitly.
_REPO_FEATURE_REPO = Path(__file__).resolve().parents[2] / "feature_repo"
_REPO_USECASES = Path(__file__).resolve().parents[2] / "usecases"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    usecase: str = Field(
        default="",
        pattern=r"^([a-z][a-z0-9_]{0,39})?$",
        description="The use case a process works for (a folder of MLOPS_USECASES_DIR). The "
        "DAGs and commands set it per use case; empty means the only declared one.",
    )
    usecases_dir: Path = Field(
        default=_REPO_USECASES,
        description="Root of the use-case folders, one `<name>/usecase.yaml` each.",
    )
    usecase_overrides: str = Field(
        default="",
        description="JSON merged into use-case declarations, keyed by use case, e.g. "
        '`{"my_model": {"training": {"min_train_rows": 50}}}` (operators and tests).',
    )
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
        default=100, ge=0, description="Fewest rows a partition's batch may hold."
    )
    max_batch_rows: int = Field(
        default=5_000_000, ge=1, description="Most rows a partition's batch may hold."
    )
    landing_wait_timeout_seconds: int = Field(
        default=6 * 3600,
        ge=1,
        description="How long ingestion waits for the partition's landing file before failing.",
    )
    landing_poke_interval_seconds: int = Field(
        default=300, ge=1, description="How often ingestion looks for the landing file."
    )
    build_data_docs: bool = Field(
        default=True, description="Render Great Expectations Data Docs after every validation."
    )
    rows_per_day: int = Field(
        default=20_000, ge=1, description="Rows per generated demo partition."
    )
    profile: Literal["embedded", "production"] = Field(
        default="embedded",
        description="`embedded`: SQLite and files under MLOPS_HOME. `production`: Postgres "
        "(Feast registry) and Redis (online store) from the URLs below.",
    )
    feature_repo: Path = Field(
        default=_REPO_FEATURE_REPO, description="The Feast repository (definitions and YAML)."
    )
    feast_project_prefix: str = Field(
        default="",
        pattern=r"^[a-zA-Z0-9_]*$",
        description="Prefix of every use case's Feast project (the project is the prefix and "
        "the use case's name), so deployments can share one registry and online store.",
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
    serving_max_body_bytes: int = Field(
        default=0,
        ge=0,
        description="Largest request body the model server reads; a larger one is answered "
        "413 unread. 0: 2 KiB per row of the use case's `serving.max_batch` plus 64 KiB.",
    )
    serving_shadow: bool = Field(
        default=False,
        description="The model server also loads the `challenger` and scores every request "
        "with it after answering with the champion (live shadow; its own log and metrics).",
    )
    serving_url: str = Field(
        default="",
        description="Base URL of each use case's model server, for the post-promotion smoke "
        "test; `{usecase}` is replaced by the use case's name, e.g. "
        "`http://model-server-{usecase}:8080` (empty: no smoke test).",
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
    online_check_sample: int = Field(
        default=200, ge=1, description="Entities checked in the online store after materializing."
    )
    drift_schedule: str = Field(
        default="0 2 * * *",
        description="Cron (UTC) of the nightly drift check; each run checks the last partition "
        "completed before it.",
    )
    model_server_container: str = Field(
        default="",
        description="Docker Compose deploy target: after a promotion, the use case's deploy "
        "DAG restarts this container (name or id; `{usecase}` is replaced by the use case's "
        "name) through the Docker provider so it loads the new champion at once (empty: off).",
    )
    scoring_wait_timeout_seconds: int = Field(
        default=8 * 3600,
        ge=1,
        description="How long batch scoring waits for its partition to be validated and its "
        "features materialized before failing (longer than the landing wait: ingestion and "
        "materialization come first).",
    )
    scoring_poke_interval_seconds: int = Field(
        default=300,
        ge=1,
        description="How often batch scoring looks whether its partition is ready.",
    )
    predictions_database_url: SecretStr = Field(
        default=SecretStr(""),
        description="production: SQLAlchemy URL of the Postgres database batch predictions are "
        "also written to (empty: the Feast registry's database, MLOPS_FEAST_REGISTRY_URL).",
    )
    predictions_table: str = Field(
        default="batch_predictions",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="production: the Postgres table of batch predictions (every use case's "
        "rows, one set per use case and partition).",
    )
    docker_url: str = Field(
        default="unix://var/run/docker.sock",
        description="Docker Engine API the deploy target talks to (the mounted socket, or a "
        "socket proxy's `tcp://` URL).",
    )
    notify_url: SecretStr = Field(
        default=SecretStr(""),
        description="Webhook the DAGs' notifiers POST a JSON event to on a task failure, a "
        "pending approval and every promotion or rollback (a secret: chat webhooks carry "
        "their token in the URL; empty: off).",
    )
    notify_email: str = Field(
        default="",
        description="Comma-separated addresses the same events are e-mailed to through "
        "Airflow's SMTP provider and its `smtp_default` connection (empty: off).",
    )
    notify_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long one notification may take; a target that is down or slow is "
        "logged and skipped, never failing the task.",
    )

    @field_validator("home", "feature_repo", "usecases_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Tasks run from other working directories; a relative home would scatter state.
        return value.expanduser().resolve()

    @property
    def spec(self) -> UseCase:
        """The declaration of this process's use case (validated, cached per file version)."""
        from mlops_pipeline.usecases.loader import load_usecase

        return load_usecase(self.usecases_dir / self.usecase_name, self._overrides())

    @property
    def usecase_name(self) -> str:
        if self.usecase:
            return self.usecase
        from mlops_pipeline.usecases.loader import declared_usecases

        declared = declared_usecases(self.usecases_dir)
        if len(declared) != 1:
            raise SpecError(
                f"MLOPS_USECASE is not set and {self.usecases_dir} declares "
                f"{len(declared)} use cases ({', '.join(declared) or 'none'}): name one"
            )
        return declared[0]

    def for_usecase(self, name: str) -> Settings:
        return self.replace(usecase=name)

    def _overrides(self) -> dict[str, object]:
        if not self.usecase_overrides:
            return {}
        try:
            overrides = json.loads(self.usecase_overrides)
        except json.JSONDecodeError as exc:
            raise SpecError(f"MLOPS_USECASE_OVERRIDES is not JSON: {exc}") from None
        return overrides.get(self.usecase_name, {})

    @property
    def model_server_url(self) -> str:
        """This use case's model server (``serving_url`` with ``{usecase}`` filled in)."""
        return self.serving_url.replace("{usecase}", self.usecase_name)

    @property
    def model_server_container_name(self) -> str:
        return self.model_server_container.replace("{usecase}", self.usecase_name)

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing" / self.spec.dataset

    @property
    def lake_dir(self) -> Path:
        return self.home / "lake" / self.spec.dataset

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine" / self.spec.dataset

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def validations_dir(self) -> Path:
        return self.reports_dir / "validations" / self.spec.dataset

    @property
    def gx_dir(self) -> Path:
        return self.home / "gx"

    @property
    def data_docs_dir(self) -> Path:
        return self.reports_dir / "data_docs"

    @property
    def drift_reports_dir(self) -> Path:
        return self.reports_dir / "drift" / self.usecase_name

    @property
    def decisions_dir(self) -> Path:
        return self.reports_dir / "decisions" / self.usecase_name

    @property
    def predictions_dir(self) -> Path:
        return self.home / "predictions" / self.usecase_name

    @property
    def shadow_predictions_dir(self) -> Path:
        """The live shadow's log: the challenger's scores of served requests."""
        return self.home / "shadow_predictions" / self.usecase_name

    @property
    def batch_predictions_dir(self) -> Path:
        """The batch scoring DAG's predictions, one Parquet partition per scored partition
        (``predictions_dir`` is the model server's request log)."""
        return self.home / "batch_predictions" / self.usecase_name

    @property
    def feast_project(self) -> str:
        """The use case's Feast project (also the online store's key prefix)."""
        return self.feast_project_prefix + self.usecase_name

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast" / self.usecase_name

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
        return cls.model_validate(values)


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
    if default == _REPO_USECASES:
        return "<repo>/usecases"
    return str(default)
