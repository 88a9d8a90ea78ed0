"""Reads of jobs and runs, scoped to a tenant; the scheduler's status."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Min, QuerySet
from django.utils import timezone

from apps.scheduling.beat import beat_last_publish
from apps.scheduling.models import CronJob, CronRun


def cron_job_list(*, tenant, status: str | None = None) -> QuerySet[CronJob]:
    jobs = CronJob.objects.filter(tenant=tenant).select_related("agent").order_by("created_at", "pk")
    return jobs.filter(status=status) if status else jobs


def cron_job_get(*, tenant, job_id) -> CronJob | None:
    return CronJob.objects.filter(tenant=tenant, pk=job_id).select_related("agent").first()


def cron_run_list(*, tenant, job_id=None, status: str | None = None) -> QuerySet[CronRun]:
    runs = CronRun.objects.filter(tenant=tenant).select_related("job").order_by("-scheduled_for", "-pk")
    if job_id is not None:
        runs = runs.filter(job_id=job_id)
    if status:
        runs = runs.filter(status=status)
    return runs


def scheduler_status(*, tenant) -> dict[str, Any]:
    """Is beat alive (it published within CRON_BEAT_STALE_SECONDS: beat sends the internal sweeps
    every few seconds, so a silent beat is a stopped one), and this tenant's jobs."""
    last = beat_last_publish()
    now = timezone.now()
    alive = last is not None and (now - last) <= dt.timedelta(seconds=settings.CRON_BEAT_STALE_SECONDS)
    active = CronJob.objects.filter(tenant=tenant, status=CronJob.Status.ACTIVE)
    next_fire = active.aggregate(next=Min("next_run_at"))["next"]
    return {
        "beatAlive": alive,
        "lastTick": last.isoformat() if last else None,
        "jobsActive": active.count(),
        "jobsTotal": CronJob.objects.filter(tenant=tenant).count(),
        "nextFire": next_fire.isoformat() if next_fire else None,
        "maxLoopIntervalSeconds": settings.CELERY_BEAT_MAX_LOOP_INTERVAL,
    }
