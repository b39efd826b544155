"""The vocabulary of a use-case declaration: task types, column kinds, partition cadences, and
the strict base every declaration section derives from."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class Kind(StrEnum):
    INT = "int"
    FLOAT = "float"
    CATEGORY = "category"
    BOOL = "bool"
    TIMESTAMP = "timestamp"


class Task(StrEnum):
    BINARY_CLASSIFICATION = "binary_classification"
    REGRESSION = "regression"


class Cadence(StrEnum):
    """How often a partition of data lands: one partition per hour, day or week (UTC)."""

    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"

    @property
    def length(self) -> dt.timedelta:
        return {
            Cadence.HOURLY: dt.timedelta(hours=1),
            Cadence.DAILY: dt.timedelta(days=1),
            Cadence.WEEKLY: dt.timedelta(weeks=1),
        }[self]

    def partition_of(self, day: dt.date) -> dt.date:
        """The partition a calendar day belongs to, named by its first day (weeks: Monday)."""
        if self is Cadence.WEEKLY:
            return day - dt.timedelta(days=day.weekday())
        return day

    def partitions_back(self, end: dt.date, count: int) -> dt.date:
        """The first partition of the ``count`` partitions ending with ``end``'s partition."""
        step = 7 if self is Cadence.WEEKLY else 1
        return self.partition_of(end) - dt.timedelta(days=step * (count - 1))

    @property
    def cron(self) -> str:
        """The cron of the data intervals: weeks start on Monday 00:00 UTC."""
        return {
            Cadence.HOURLY: "0 * * * *",
            Cadence.DAILY: "0 0 * * *",
            Cadence.WEEKLY: "0 0 * * 1",
        }[self]


class Strict(BaseModel):
    """A declaration section: unknown keys are errors (typos never pass silently), and a
    validated spec cannot change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
