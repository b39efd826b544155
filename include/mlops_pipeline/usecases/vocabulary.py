"""The vocabulary of a use-case declaration: task types, column kinds, partition cadences (and
the keys naming their partitions), the entity-duplicates rules, and the strict base every
declaration section derives from."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
HOUR_KEY_FORMAT = "%Y-%m-%dT%H"
# What a partition may be given as (a parameter, ``--date``): a day, or an hour of a day.
PARTITION_PATTERN = r"^\d{4}-\d{2}-\d{2}(T\d{2}(:\d{2})?)?$"


class Kind(StrEnum):
    INT = "int"
    FLOAT = "float"
    CATEGORY = "category"
    BOOL = "bool"
    TIMESTAMP = "timestamp"


class Task(StrEnum):
    BINARY_CLASSIFICATION = "binary_classification"
    REGRESSION = "regression"


class Duplicates(StrEnum):
    """What a partition does with a second row of one entity (exact copies of a row are
    always quarantined, the first kept)."""

    # The newest snapshot (by the event timestamp; at one timestamp the later row of the
    # file, a re-send coming after what it corrects) stays, the older ones are quarantined.
    KEEP_LATEST = "keep_latest"
    # The entity's first row of the file stays, every other row of it is quarantined.
    REJECT = "reject"


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

    def partition_of(self, moment: dt.date) -> dt.date:
        """The partition holding ``moment``, named by its start (UTC): a daily partition by its
        day, a weekly one by its Monday, an hourly one by a naive ``dt.datetime`` at its hour.

        A ``dt.datetime`` is a ``dt.date``, so one type names the partitions of every cadence;
        an aware moment is converted to UTC first, a plain day of an hourly cadence means its
        first hour."""
        # Plain ``date``/``datetime`` values out, whatever subclass came in (Airflow's pendulum).
        hour = 0
        if isinstance(moment, dt.datetime):
            if moment.tzinfo is not None:
                moment = moment.astimezone(dt.UTC)
            hour = moment.hour
        day = dt.date(moment.year, moment.month, moment.day)
        if self is Cadence.HOURLY:
            return dt.datetime(day.year, day.month, day.day, hour)
        if self is Cadence.WEEKLY:
            return day - dt.timedelta(days=day.weekday())
        return day

    def partitions_back(self, end: dt.date, count: int) -> dt.date:
        """The first partition of the ``count`` partitions ending with ``end``'s partition."""
        return self.partition_of(end) - self.length * (count - 1)

    def start(self, partition: dt.date) -> dt.datetime:
        """The aware UTC instant the partition holding ``partition`` starts at."""
        first = self.partition_of(partition)
        if not isinstance(first, dt.datetime):
            first = dt.datetime.combine(first, dt.time())
        return first.replace(tzinfo=dt.UTC)

    def key(self, partition: dt.date) -> str:
        """The name of the partition holding ``partition`` (see ``partition_key``)."""
        return partition_key(self.partition_of(partition))

    def parse(self, text: str) -> dt.date:
        """The partition holding the moment ``text`` names: a key, an ISO date or date-time
        (``2025-06-02``, ``2025-06-02T05``, ``2025-06-02T05:00``). Raises ``ValueError``."""
        text = text.strip()
        if len(text) > len("YYYY-MM-DD"):
            return self.partition_of(dt.datetime.fromisoformat(text))
        return self.partition_of(dt.date.fromisoformat(text))

    @property
    def cron(self) -> str:
        """The cron of the data intervals: weeks start on Monday 00:00 UTC."""
        return {
            Cadence.HOURLY: "0 * * * *",
            Cadence.DAILY: "0 0 * * *",
            Cadence.WEEKLY: "0 0 * * 1",
        }[self]


def partition_key(partition: dt.date) -> str:
    """A partition's name in folders, manifests and reports: ``YYYY-MM-DD`` for a day or a week,
    ``YYYY-MM-DDTHH`` for an hour (no ``:``, which paths and Hive keys avoid)."""
    if isinstance(partition, dt.datetime):
        return partition.strftime(HOUR_KEY_FORMAT)
    return partition.isoformat()


def partition_seed(partition: dt.date) -> int:
    """A number for seeding what is drawn per partition: a day's ordinal, or the hour's count
    from the same origin (daily draws stay as they were)."""
    if isinstance(partition, dt.datetime):
        return partition.toordinal() * 24 + partition.hour
    return partition.toordinal()


def partition_from_key(key: str) -> dt.date:
    """The partition ``partition_key`` named ``key``. Raises ``ValueError``."""
    if "T" in key:
        return Cadence.HOURLY.partition_of(dt.datetime.fromisoformat(key))
    return dt.date.fromisoformat(key)


def _partition_value(value: object) -> dt.date:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return partition_from_key(value)
    raise ValueError(f"a partition is a date, a datetime or its key, not {value!r}")


# A partition in a record (pydantic): written as its key, so an hourly one keeps its hour (a
# ``dt.date`` field would drop it) and a daily one reads as before.
PartitionField = Annotated[
    dt.date, PlainValidator(_partition_value), PlainSerializer(partition_key, when_used="json")
]


class Strict(BaseModel):
    """A declaration section: unknown keys are errors (typos never pass silently), and a
    validated spec cannot change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
