"""What a schedule means: next runs in a timezone, DST edges, the slot a fire stands for."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from apps.scheduling.schedule import (
    ScheduleError,
    cron_latest,
    cron_next,
    describe,
    slot_for_fire,
    validate_cron,
)

NY = ZoneInfo("America/New_York")
UTC = dt.UTC


def test_cron_times_are_read_in_the_jobs_timezone():
    after = dt.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday
    assert cron_next("0 9 * * *", "Europe/Paris", after) == dt.datetime(2026, 1, 6, 8, 0, tzinfo=UTC)
    assert cron_next("0 9 * * *", "America/New_York", after) == dt.datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


def test_a_0230_job_on_the_spring_forward_day_runs_once_at_0300_local():
    # 2026-03-08 02:00 EST jumps to 03:00 EDT in New York: 02:30 does not exist that day.
    before = dt.datetime(2026, 3, 7, 12, 0, tzinfo=NY)  # after the 7th's 02:30
    on_the_day = cron_next("30 2 * * *", "America/New_York", before)
    assert on_the_day.astimezone(NY) == dt.datetime(2026, 3, 8, 3, 0, tzinfo=NY)
    assert on_the_day == dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT, the first moment after the gap
    the_day_after = cron_next("30 2 * * *", "America/New_York", on_the_day)
    assert the_day_after.astimezone(NY) == dt.datetime(2026, 3, 9, 2, 30, tzinfo=NY)
    # A fire at that moment (or a little after) stands for that one slot.
    assert cron_latest("30 2 * * *", "America/New_York", on_the_day + dt.timedelta(seconds=3)) == on_the_day


def test_a_0130_job_on_the_fall_back_day_runs_once():
    # 2026-11-01 01:00-02:00 happens twice in New York; the job runs at the first 01:30 only.
    start = dt.datetime(2026, 10, 31, 12, 0, tzinfo=NY)
    first = cron_next("30 1 * * *", "America/New_York", start)
    assert first.astimezone(NY).utcoffset() == dt.timedelta(hours=-4)  # EDT, the first pass
    second = cron_next("30 1 * * *", "America/New_York", first)
    assert second.astimezone(NY).date() == dt.date(2026, 11, 2)
    # A fire during the second 01:30 (an hour later) maps back onto the slot already run.
    assert cron_latest("30 1 * * *", "America/New_York", first + dt.timedelta(hours=1, seconds=5)) == first


@pytest.mark.parametrize(
    ("expression", "timezone", "message"),
    [
        ("", "UTC", "Cron schedule requires an expression field"),
        ("61 * * * *", "UTC", "Invalid cron expression: '61 * * * *'"),
        ("* * * *", "UTC", "must have 5 fields"),
        ("0 9 * * * *", "UTC", "must have 5 fields"),
        ("0 9 1 * 1", "UTC", "restricts both day of month and day of week"),
        ("0 9 * * *", "Mars/Olympus", "Invalid timezone: 'Mars/Olympus'"),
    ],
)
def test_bad_cron_input_is_named(expression, timezone, message):
    with pytest.raises(ScheduleError, match=message.replace("*", r"\*").replace("(", r"\(")):
        validate_cron(expression, timezone)


def test_the_preview_reads_like_a_sentence():
    assert describe(schedule_type="cron", expression="0 7 * * 1-5", timezone="UTC") == (
        "At 07:00, Monday through Friday (UTC)"
    )
    assert describe(schedule_type="interval", interval_seconds=3600) == "Every 1 hour"
    assert describe(schedule_type="interval", interval_seconds=90) == "Every 90 seconds"


def _job(**fields):
    base = {
        "schedule_type": "cron",
        "expression": "*/5 * * * *",
        "timezone": "UTC",
        "at": None,
        "next_run_at": None,
        "schedule_since": dt.datetime(2026, 1, 1, tzinfo=UTC),
    }
    return SimpleNamespace(**{**base, **fields})


def test_two_fires_of_one_cron_slot_name_the_same_slot():
    slot = dt.datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    first = slot_for_fire(_job(), fired_at=slot + dt.timedelta(milliseconds=40), tolerance=1.0)
    second = slot_for_fire(_job(), fired_at=slot + dt.timedelta(milliseconds=900), tolerance=1.0)
    early = slot_for_fire(_job(), fired_at=slot - dt.timedelta(milliseconds=300), tolerance=1.0)
    assert first.scheduled_for == second.scheduled_for == early.scheduled_for == slot


def test_no_slot_before_the_schedule_was_set_or_before_it_is_due():
    since = dt.datetime(2026, 1, 1, 10, 7, tzinfo=UTC)
    stale = slot_for_fire(_job(schedule_since=since), fired_at=since + dt.timedelta(seconds=1), tolerance=1.0)
    assert stale.scheduled_for is None  # 10:05 was before the job (re)started
    at = dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    once = _job(schedule_type="once", at=at)
    assert slot_for_fire(once, fired_at=at - dt.timedelta(seconds=5), tolerance=1.0).scheduled_for is None
    assert slot_for_fire(once, fired_at=at, tolerance=1.0).scheduled_for == at
    interval = _job(schedule_type="interval", next_run_at=at)
    assert slot_for_fire(interval, fired_at=at + dt.timedelta(milliseconds=5), tolerance=1.0).scheduled_for == at


def test_beats_reading_of_the_skipped_0230_still_makes_one_run_of_the_days_slot():
    """celery's crontab reads the nonexistent 02:30 with the winter offset (03:30 EDT); that fire,
    and any repeat of it, stands for the day's one slot (03:00 EDT, what next_run_at showed)."""
    job = _job(expression="30 2 * * *", timezone="America/New_York")
    beat_fire = dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    slot = slot_for_fire(job, fired_at=beat_fire, tolerance=1.0).scheduled_for
    assert slot == dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert slot_for_fire(job, fired_at=beat_fire + dt.timedelta(minutes=15), tolerance=1.0).scheduled_for == slot


def test_a_once_jobs_description_reads_as_a_local_time():
    from apps.scheduling.schedule import describe

    at = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)
    assert describe(schedule_type="once", timezone="Europe/Paris", at=at) == "Once, at 2026-12-04 09:00 (Europe/Paris)"
