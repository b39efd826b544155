"""Partitions of each cadence: which one holds a moment, their keys, and counting back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import BaseModel

from mlops_pipeline.data import storage
from mlops_pipeline.usecases.vocabulary import (
    Cadence,
    PartitionField,
    partition_from_key,
    partition_key,
)

HOURLY, DAILY, WEEKLY = Cadence.HOURLY, Cadence.DAILY, Cadence.WEEKLY


def test_an_hour_is_named_by_its_start_in_utc():
    assert HOURLY.partition_of(dt.datetime(2025, 6, 2, 5, 59, 59)) == dt.datetime(2025, 6, 2, 5)
    # An aware moment is converted to UTC first: 01:30 at UTC+2 is 23:30 the day before.
    east = dt.timezone(dt.timedelta(hours=2))
    assert HOURLY.partition_of(dt.datetime(2025, 6, 2, 1, 30, tzinfo=east)) == dt.datetime(
        2025, 6, 1, 23
    )
    # A plain day means its first hour.
    assert HOURLY.partition_of(dt.date(2025, 6, 2)) == dt.datetime(2025, 6, 2, 0)
    assert HOURLY.start(dt.datetime(2025, 6, 2, 5, 10)) == dt.datetime(2025, 6, 2, 5, tzinfo=dt.UTC)


def test_days_and_weeks_stay_dates_whatever_moment_names_them():
    moment = dt.datetime(2025, 6, 4, 23, 59, tzinfo=dt.UTC)  # a Wednesday
    assert DAILY.partition_of(moment) == dt.date(2025, 6, 4)
    assert type(DAILY.partition_of(moment)) is dt.date
    assert WEEKLY.partition_of(moment) == dt.date(2025, 6, 2)
    assert DAILY.start(dt.date(2025, 6, 4)) == dt.datetime(2025, 6, 4, tzinfo=dt.UTC)


def test_keys_keep_the_daily_and_weekly_layout_and_give_hours_their_own():
    assert DAILY.key(dt.date(2025, 6, 2)) == "2025-06-02"
    assert WEEKLY.key(dt.date(2025, 6, 5)) == "2025-06-02"
    assert HOURLY.key(dt.datetime(2025, 6, 2, 5, 40)) == "2025-06-02T05"
    for partition in (dt.date(2025, 6, 2), dt.datetime(2025, 6, 2, 0), dt.datetime(2025, 6, 2, 23)):
        assert partition_from_key(partition_key(partition)) == partition
        assert type(partition_from_key(partition_key(partition))) is type(partition)
    root = Path("/lake")
    assert storage.partition_dir(root, dt.date(2025, 6, 2)).name == "date=2025-06-02"
    assert storage.partition_dir(root, dt.datetime(2025, 6, 2, 5)).name == "date=2025-06-02T05"


def test_hour_keys_sort_in_time_order_across_midnight():
    hours = [dt.datetime(2025, 6, 1, 23), dt.datetime(2025, 6, 2, 0), dt.datetime(2025, 6, 2, 9)]
    assert sorted(partition_key(h) for h in reversed(hours)) == [partition_key(h) for h in hours]


def test_partitions_back_count_hours_across_midnight():
    assert HOURLY.partitions_back(dt.datetime(2025, 6, 2, 1, 30), 3) == dt.datetime(2025, 6, 1, 23)
    assert HOURLY.partitions_back(dt.datetime(2025, 6, 2, 1), 1) == dt.datetime(2025, 6, 2, 1)
    assert HOURLY.partitions_back(dt.datetime(2025, 6, 2, 0), 25) == dt.datetime(2025, 6, 1, 0)
    assert DAILY.partitions_back(dt.date(2025, 6, 2), 3) == dt.date(2025, 5, 31)
    assert WEEKLY.partitions_back(dt.date(2025, 6, 4), 2) == dt.date(2025, 5, 26)


@pytest.mark.parametrize(
    ("text", "cadence", "partition"),
    [
        ("2025-06-02T05", HOURLY, dt.datetime(2025, 6, 2, 5)),
        ("2025-06-02T05:00", HOURLY, dt.datetime(2025, 6, 2, 5)),
        ("2025-06-02T05:45:10", HOURLY, dt.datetime(2025, 6, 2, 5)),
        ("2025-06-02", HOURLY, dt.datetime(2025, 6, 2, 0)),
        ("2025-06-02T05", DAILY, dt.date(2025, 6, 2)),
        ("2025-06-05", WEEKLY, dt.date(2025, 6, 2)),
    ],
)
def test_parse_gives_the_partition_holding_the_moment(text, cadence, partition):
    assert cadence.parse(text) == partition


@pytest.mark.parametrize("text", ["2025-06-02T25", "2025-13-02", "yesterday", ""])
def test_parse_rejects_what_names_no_moment(text):
    with pytest.raises(ValueError):
        HOURLY.parse(text)


def test_a_partition_field_round_trips_through_json_as_its_key():
    class Record(BaseModel):
        night: PartitionField

    hourly = Record(night=dt.datetime(2025, 6, 2, 0))
    assert hourly.model_dump(mode="json") == {"night": "2025-06-02T00"}
    assert Record.model_validate_json(hourly.model_dump_json()).night == dt.datetime(2025, 6, 2)
    daily = Record.model_validate({"night": "2025-06-02"})
    assert (
        daily.night == dt.date(2025, 6, 2) and daily.model_dump_json() == '{"night":"2025-06-02"}'
    )


def test_an_hourly_use_case_is_checked_for_drift_every_hour(settings):
    from mlops_pipeline.orchestration.schedules import drift_schedule

    assert drift_schedule(settings, HOURLY) == "30 * * * *"
    assert drift_schedule(settings, DAILY) == drift_schedule(settings, WEEKLY)
    assert drift_schedule(settings, DAILY) == settings.drift_schedule
