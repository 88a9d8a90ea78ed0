"""The jobs' side of django-celery-beat: one `PeriodicTask` per job, upserted by its stable name
`cron:<job id>` (never by wiping the table, so beat's internal entries and operators' own stay),
and the beat-process hook that stamps each fire with the moment beat sent it.

Beat's DatabaseScheduler reloads its entries when `PeriodicTasks.last_update` moves (every
`PeriodicTask.save()` moves it) and checks for that every `CELERY_BEAT_MAX_LOOP_INTERVAL`."""

from __future__ import annotations

import datetime as dt
import logging

from celery.signals import before_task_publish
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.scheduling.models import CronJob, ScheduleType
from apps.scheduling.schedule import cron_fields

logger = logging.getLogger(__name__)

FIRE_TASK = "apps.scheduling.tasks.cron_job_fire"
FIRED_AT_HEADER = "cron_fired_at"
BEAT_TICK_KEY = "scheduling:beat:last_publish"
HEARTBEAT_EVERY_SECONDS = 1.0
_last_heartbeat: dt.datetime | None = None  # per process: beat has one sending thread


def periodic_task_sync(job: CronJob) -> PeriodicTask | None:
    """Make beat's row for `job` say what the job says. Call inside the job's transaction.

    Only an active job has an enabled row; a paused, completed or failed job keeps a disabled
    one (so resuming is an update, and the admin shows it). For an interval job `last_run_at` is
    set so that beat's first fire is exactly the job's next_run_at."""
    name = job.periodic_task_name
    task = PeriodicTask.objects.filter(name=name).select_related("clocked").first()
    old_clocked = task.clocked if task is not None else None
    fields = {
        "task": FIRE_TASK,
        "kwargs": f'{{"job_id": "{job.pk}"}}',
        "enabled": job.status == CronJob.Status.ACTIVE and job.enabled,
        "description": f"tenant {job.tenant_id}: {job.name}"[:200],
        "crontab": None,
        "interval": None,
        "clocked": None,
        "one_off": False,
        # A fire that waited behind a broker outage for longer than this is dropped by the worker;
        # the job's next slot comes anyway.
        "expire_seconds": int(settings.CRON_FIRE_EXPIRES_SECONDS) or None,
    }
    if job.schedule_type == ScheduleType.CRON:
        fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
            **cron_fields(job.expression), timezone=job.timezone
        )
    elif job.schedule_type == ScheduleType.INTERVAL:
        fields["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=job.interval_seconds, period=IntervalSchedule.SECONDS
        )
        if job.next_run_at is not None:
            fields["last_run_at"] = job.next_run_at - dt.timedelta(seconds=job.interval_seconds)
    else:
        if old_clocked is not None and old_clocked.clocked_time == job.at:
            fields["clocked"] = old_clocked
        else:
            fields["clocked"] = ClockedSchedule.objects.create(clocked_time=job.at)
        fields["one_off"] = True
    if job.schedule_type == ScheduleType.CRON and fields["enabled"]:
        # Counted from now: beat would otherwise fire at once for a slot missed while paused.
        fields["last_run_at"] = timezone.now()
    if task is None:
        task = PeriodicTask(name=name, **fields)
    else:
        for key, value in fields.items():
            setattr(task, key, value)
        task.total_run_count = 0  # a one-off that ran is enabled again by a new time
    task.save()
    if old_clocked is not None and old_clocked.pk != getattr(fields["clocked"], "pk", None):
        old_clocked.delete()
    return task


def periodic_task_retire(job: CronJob) -> None:
    """A once-job that ran: its row off, without a `save()`. Beat turns a one-off entry off by
    itself after sending it, so its schedule need not be reloaded (a save moves
    `PeriodicTasks.last_update`, one row every fire would queue on); the row says it at once."""
    PeriodicTask.objects.filter(name=job.periodic_task_name).update(enabled=False)


def periodic_task_delete(job: CronJob) -> None:
    task = PeriodicTask.objects.filter(name=job.periodic_task_name).select_related("clocked").first()
    if task is None:
        return
    clocked = task.clocked
    task.delete()
    if clocked is not None:
        clocked.delete()


# --- the beat process ------------------------------------------------------------------------------


def _stamp_beat_publish(sender=None, headers=None, **_kwargs) -> None:
    """In whatever process publishes a task: beat's own sends carry `periodic_task_name` (set by
    django-celery-beat's ModelEntry). Those of the jobs get the fire time, which the worker
    turns into the slot (beat passes no timestamp of its own); every beat send also refreshes
    the heartbeat that /api/settings/scheduler/status reads."""
    if not headers or "periodic_task_name" not in headers:
        return
    now = timezone.now()
    if sender == FIRE_TASK:
        headers[FIRED_AT_HEADER] = now.isoformat()
    # At most once a second: a burst of 100 due jobs must not cost 100 cache writes (3 ms each
    # when profiled) in beat's one sending thread.
    global _last_heartbeat
    if _last_heartbeat is not None and (now - _last_heartbeat).total_seconds() < HEARTBEAT_EVERY_SECONDS:
        return
    _last_heartbeat = now
    try:
        cache.set(BEAT_TICK_KEY, now.isoformat(), timeout=int(settings.CRON_BEAT_STALE_SECONDS) * 10)
    except Exception:  # Redis down: the fire goes on (the broker is the same Redis and will say)
        logger.warning("could not record the beat heartbeat", exc_info=True)


def connect_signals() -> None:
    before_task_publish.connect(_stamp_beat_publish, dispatch_uid="scheduling-beat-stamp")


def beat_last_publish() -> dt.datetime | None:
    raw = cache.get(BEAT_TICK_KEY)
    return dt.datetime.fromisoformat(raw) if raw else None
