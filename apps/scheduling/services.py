"""Every write to jobs and runs: create, change, pause, resume, delete, run now, and the fire
that beat triggers (apps/scheduling/tasks.py), plus settling runs whose turn has ended."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.errors import Conflict
from apps.events import types as ev
from apps.events.services import publish
from apps.scheduling import beat
from apps.scheduling.inputs import JobInputError
from apps.scheduling.models import CronJob, CronRun, ScheduleType
from apps.scheduling.schedule import cron_smallest_gap, first_run
from apps.tenancy.models import Tenant

logger = logging.getLogger(__name__)

OPEN_STATUSES = (CronJob.Status.ACTIVE, CronJob.Status.PAUSED)


# --- limits --------------------------------------------------------------------------------------


def tenant_min_interval(tenant) -> int:
    value = (tenant.settings or {}).get("cron_min_interval_seconds")
    return int(value) if value is not None else int(settings.CRON_MIN_INTERVAL_SECONDS)


def tenant_max_jobs(tenant) -> int:
    value = (tenant.settings or {}).get("cron_max_jobs")
    return int(value) if value is not None else int(settings.CRON_MAX_JOBS)


def _check_schedule(tenant, fields: dict[str, Any], *, now: dt.datetime) -> None:
    minimum = tenant_min_interval(tenant)
    kind = fields["schedule_type"]
    if kind == ScheduleType.INTERVAL and fields["interval_seconds"] < minimum:
        raise JobInputError(
            f"Invalid intervalMs: {fields['interval_seconds'] * 1000} is below this tenant's minimum interval "
            f"of {minimum * 1000} ms (tenant setting cron_min_interval_seconds)",
            "intervalMs",
        )
    if kind == ScheduleType.CRON and cron_smallest_gap(fields["expression"], fields["timezone"], now) < minimum:
        raise JobInputError(
            f"Invalid cron expression: {fields['expression']!r} runs more often than this tenant's minimum "
            f"interval of {minimum} s (tenant setting cron_min_interval_seconds)",
            "expression",
        )
    if kind == ScheduleType.ONCE and fields["at"] <= now:
        raise JobInputError("Invalid atTimestamp: the time is in the past", "atTimestamp")


def _check_job_count(tenant) -> None:
    """Under the tenant row's lock, so two creates cannot both take the last slot."""
    Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk", flat=True).first()
    limit = tenant_max_jobs(tenant)
    existing = CronJob.objects.filter(tenant=tenant, status__in=OPEN_STATUSES).count()
    if existing >= limit:
        raise Conflict(
            f"This tenant has reached its cron_max_jobs limit ({existing} of {limit} active or paused jobs). "
            "Delete one, or ask an owner to raise cron_max_jobs in the tenant settings."
        )


# --- events --------------------------------------------------------------------------------------


def job_update_publish(job: CronJob, phase: str, *, run: CronRun | None = None) -> None:
    """`job_update` on the tenant's stream: phase is created | updated | paused | resumed |
    deleted | fired | finished | failed | completed."""
    data: dict[str, Any] = {
        "job_id": str(job.pk),
        "name": job.name,
        "phase": phase,
        "status": job.status,
        "next_run_at": job.next_run_at.isoformat() if job.next_run_at else None,
        "run_count": job.run_count,
    }
    if job.status_reason:
        data["reason"] = job.status_reason
    if run is not None:
        data["run"] = {
            "id": str(run.pk),
            "status": run.status,
            "scheduled_for": run.scheduled_for.isoformat(),
            "trigger": run.trigger,
            "lateness_ms": run.lateness_ms,
            "turn_id": str(run.turn_id) if run.turn_id else None,
            "error": run.error or None,
        }
    publish(job.tenant_id, ev.JOB_UPDATE, data, session=job.session_id if job.session_id else None)


# --- jobs ----------------------------------------------------------------------------------------


def cron_job_create(*, tenant, fields: dict[str, Any], created_by=None, origin: str = CronJob.Origin.API) -> CronJob:
    now = timezone.now()
    _check_schedule(tenant, fields, now=now)
    with transaction.atomic():
        _check_job_count(tenant)
        job = CronJob(
            tenant=tenant,
            created_by=created_by if getattr(created_by, "pk", None) else None,
            origin=origin,
            schedule_since=now,
            **fields,
        )
        if not job.enabled:
            job.status = CronJob.Status.PAUSED
        job.next_run_at = first_run(job, now=now) if job.status == CronJob.Status.ACTIVE else None
        job.save()
        beat.periodic_task_sync(job)
        job_update_publish(job, "created")
    return job


SCHEDULE_FIELDS = ("schedule_type", "expression", "timezone", "at", "interval_seconds")


def cron_job_update(*, tenant, job: CronJob, changes: dict[str, Any]) -> CronJob:
    now = timezone.now()
    # Any one schedule field changes the schedule (the API sends them all; other callers need not).
    schedule_changed = any(key in changes for key in SCHEDULE_FIELDS)
    if schedule_changed:
        _check_schedule(tenant, {**{key: getattr(job, key) for key in SCHEDULE_FIELDS}, **changes}, now=now)
    with transaction.atomic():
        job = CronJob.objects.select_for_update().get(pk=job.pk, tenant=tenant)
        for key, value in changes.items():
            setattr(job, key, value)
        if schedule_changed:
            job.schedule_since = now
            if job.status == CronJob.Status.COMPLETED:
                # A finished once-job given a new schedule (checked to lie ahead) runs again.
                job.status, job.enabled = CronJob.Status.ACTIVE, True
            job.next_run_at = first_run(job, now=now) if job.status == CronJob.Status.ACTIVE else None
        if job.status == CronJob.Status.FAILED and ("agent" in changes or "session" in changes or schedule_changed):
            # What made it fail (its agent or session gone) was replaced: it runs again.
            job.status, job.status_reason, job.enabled = CronJob.Status.ACTIVE, "", True
            job.schedule_since = now
            job.next_run_at = first_run(job, now=now)
        job.save()
        beat.periodic_task_sync(job)
        job_update_publish(job, "updated")
    return job


def cron_job_delete(*, tenant, job: CronJob) -> None:
    with transaction.atomic():
        locked = CronJob.objects.select_for_update().filter(pk=job.pk, tenant=tenant).first()
        if locked is None:
            return
        beat.periodic_task_delete(locked)
        locked.delete()
        locked.pk = job.pk  # for the event
        locked.status = "deleted"
        locked.next_run_at = None
        job_update_publish(locked, "deleted")


def cron_job_pause(*, tenant, job: CronJob) -> CronJob:
    with transaction.atomic():
        changed = CronJob.objects.filter(pk=job.pk, tenant=tenant, status=CronJob.Status.ACTIVE).update(
            status=CronJob.Status.PAUSED, enabled=False, next_run_at=None, updated_at=timezone.now()
        )
        job = CronJob.objects.get(pk=job.pk)
        if not changed:
            raise Conflict(f"Only an active job can be paused; this one is {job.status}.")
        beat.periodic_task_sync(job)
        job_update_publish(job, "paused")
    return job


def cron_job_resume(*, tenant, job: CronJob) -> CronJob:
    now = timezone.now()
    with transaction.atomic():
        job = CronJob.objects.select_for_update().get(pk=job.pk, tenant=tenant)
        if job.status != CronJob.Status.PAUSED:
            raise Conflict(f"Only a paused job can be resumed; this one is {job.status}.")
        if job.schedule_type == ScheduleType.ONCE and job.at <= now:
            raise Conflict("This once-job's time passed while it was paused; give it a new atTimestamp with PATCH.")
        job.status, job.enabled, job.schedule_since = CronJob.Status.ACTIVE, True, now
        job.next_run_at = first_run(job, now=now)
        job.save(update_fields=["status", "enabled", "schedule_since", "next_run_at", "updated_at"])
        beat.periodic_task_sync(job)
        job_update_publish(job, "resumed")
    return job


def job_fail(job: CronJob, reason: str) -> None:
    job.status, job.status_reason, job.enabled, job.next_run_at = CronJob.Status.FAILED, reason, False, None
    job.save(update_fields=["status", "status_reason", "enabled", "next_run_at", "updated_at"])
    beat.periodic_task_sync(job)
