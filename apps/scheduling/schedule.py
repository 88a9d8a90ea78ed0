"""What a schedule means: validation, the next run, the slot a fire belongs to, and the
human-readable description. cronsim computes cron times (DST included) and validates
expressions; cron-descriptor describes them; celery's own parser must accept them too, since beat
fires them through a `CrontabSchedule`.

Times are aware datetimes; cron fields are read in the job's IANA timezone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import crontab
from cron_descriptor import Options, get_description
from cronsim import CronSim, CronSimError

from apps.scheduling.models import ScheduleType

CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
# How many upcoming cron times are compared to check a tenant's minimum interval.
_GAP_SAMPLES = 12


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message is the API's `error`."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or name not in _zone_names():
        raise ScheduleError(
            f"Invalid timezone: {name!r} is not an IANA time zone name (e.g. 'Europe/Paris')", "timezone"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"Invalid timezone: {name!r}", "timezone") from exc


def cron_fields(expression: str) -> dict[str, str]:
    parts = expression.split()
    if len(parts) != len(CRON_FIELDS):
        raise ScheduleError(
            f"Invalid cron expression: {expression!r} must have 5 fields (minute hour day-of-month month day-of-week)",
            "expression",
        )
    return dict(zip(CRON_FIELDS, parts, strict=True))


def validate_cron(expression: str, timezone: str) -> None:
    """Raise ScheduleError unless both cronsim and celery's crontab read `expression` alike."""
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("Cron schedule requires an expression field", "expression")
    fields = cron_fields(expression)
    tz = zone(timezone)
    try:
        CronSim(expression, dt.datetime.now(tz))
    except CronSimError as exc:
        raise ScheduleError(f"Invalid cron expression: {expression!r} ({exc})", "expression") from exc
    try:
        crontab(**fields)
    except ValueError as exc:
        raise ScheduleError(f"Invalid cron expression: {expression!r} ({exc})", "expression") from exc
    # cron runs a day that matches day-of-month OR day-of-week when both are restricted; celery's
    # crontab needs both to match. Refused rather than fired on days the preview does not show.
    if fields["day_of_month"] != "*" and fields["day_of_week"] != "*":
        raise ScheduleError(
            f"Invalid cron expression: {expression!r} restricts both day of month and day of week; "
            "use one of them and '*' for the other",
            "expression",
        )


def cron_next(expression: str, timezone: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after `after`."""
    return next(CronSim(expression, after.astimezone(zone(timezone)))).astimezone(dt.UTC)


def cron_latest(expression: str, timezone: str, until: dt.datetime) -> dt.datetime:
    """The latest time at or before `until` (seconds dropped, as cron's times are whole minutes)."""
    local = until.astimezone(zone(timezone))
    # CronSim(reverse=True) starts below its argument's minute; one minute up makes `until`'s own
    # minute a candidate.
    start = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    found = next(CronSim(expression, start, reverse=True)).astimezone(dt.UTC)
    if found > until:
        found = next(CronSim(expression, found.astimezone(local.tzinfo), reverse=True)).astimezone(dt.UTC)
    return found


def cron_smallest_gap(expression: str, timezone: str, after: dt.datetime) -> float:
    times = CronSim(expression, after.astimezone(zone(timezone)))
    previous = next(times)
    smallest = float("inf")
    for _ in range(_GAP_SAMPLES):
        current = next(times)
        smallest = min(smallest, (current - previous).total_seconds())
        previous = current
    return smallest


def describe(*, schedule_type: str, expression: str = "", timezone: str = "UTC", at=None, interval_seconds=None) -> str:
    """A sentence for people: "At 07:00, Monday through Friday (Europe/Paris)"."""
    if schedule_type == ScheduleType.CRON:
        try:
            text = get_description(expression, options=_DESCRIPTOR_OPTIONS)
        except Exception:  # noqa: BLE001 - cron-descriptor has many error types; the preview falls back
            text = expression
        return f"{text} ({timezone})"
    if schedule_type == ScheduleType.ONCE:
        return f"Once, at {at.astimezone(zone(timezone)):%Y-%m-%d %H:%M} ({timezone})" if at else "Once"
    if schedule_type == ScheduleType.INTERVAL and interval_seconds:
        return f"Every {_duration(interval_seconds)}"
    return ""


_DESCRIPTOR_OPTIONS = Options()
_DESCRIPTOR_OPTIONS.use_24hour_time_format = True


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


@dataclass(frozen=True)
class Slot:
    """The scheduled time a fire stands for, or why it stands for none."""

    scheduled_for: dt.datetime | None
    skip_reason: str = ""


def slot_for_fire(job, *, fired_at: dt.datetime, tolerance: float) -> Slot:
    """The slot a beat fire at `fired_at` runs. Two fires of the same slot (a second beat, a
    redelivered task) get the same answer, which the unique (job, scheduled_for) key collapses.

    - cron: the latest cron time at or before `fired_at` (plus `tolerance` for clock skew);
    - once: its time, once it is due;
    - interval: the job's next_run_at, once it is due (each run moves it to fire time + N, which
      is when beat, counting from the same fire, sends the next one; at least slot + N).
    Slots before `schedule_since` (created, rescheduled or resumed later) are never run."""
    horizon = fired_at + dt.timedelta(seconds=tolerance)
    if job.schedule_type == ScheduleType.CRON:
        scheduled = cron_latest(job.expression, job.timezone, horizon)
    elif job.schedule_type == ScheduleType.ONCE:
        scheduled = job.at
    else:
        scheduled = job.next_run_at
    if scheduled is None or scheduled > horizon:
        return Slot(None, "not due yet")
    if scheduled < job.schedule_since - dt.timedelta(seconds=tolerance):
        return Slot(None, "the slot is before the schedule was set")
    return Slot(scheduled)


def next_after_fire(job, *, scheduled_for: dt.datetime, fired_at: dt.datetime) -> dt.datetime | None:
    if job.schedule_type == ScheduleType.CRON:
        return cron_next(job.expression, job.timezone, max(scheduled_for, fired_at))
    if job.schedule_type == ScheduleType.INTERVAL:
        # From the fire (beat counts its next send from the same moment), but never less than N
        # after the slot: a second beat out of phase, whose send fell within the tolerance before
        # the slot, runs it a little early, and the runs stay N apart.
        return max(fired_at, scheduled_for) + dt.timedelta(seconds=job.interval_seconds)
    return None


def first_run(job, *, now: dt.datetime) -> dt.datetime | None:
    if job.schedule_type == ScheduleType.CRON:
        return cron_next(job.expression, job.timezone, now)
    if job.schedule_type == ScheduleType.ONCE:
        return job.at
    return now + dt.timedelta(seconds=job.interval_seconds)
