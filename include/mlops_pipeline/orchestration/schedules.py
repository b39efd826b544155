"""When the drift check runs, by the use case's cadence (the ingest DAG follows the cadence's
own data intervals, ``Cadence.cron``)."""

from __future__ import annotations

from mlops_pipeline.config import Settings
from mlops_pipeline.usecases.vocabulary import Cadence

# An hourly use case is checked every hour, half an hour after the hour's partition is over:
# the time its file has to land and be ingested (a nightly check leaves a day's two hours).
HOURLY_DRIFT_SCHEDULE = "30 * * * *"


def drift_schedule(settings: Settings, cadence: Cadence) -> str:
    """The cron (UTC) of the drift check: ``MLOPS_DRIFT_SCHEDULE``, or every hour for hourly
    use cases (one check a night would leave most of their partitions unchecked)."""
    return HOURLY_DRIFT_SCHEDULE if cadence is Cadence.HOURLY else settings.drift_schedule
