"""Runs: a job's action now (run now), beat's fire of a slot, and settling runs whose turn
ended. The job writes (create, change, pause, ...) are in services.py."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import APIException

from apps.conversations.models import Turn
from apps.conversations.services import message_post, session_create
from apps.events import types as ev
from apps.events.services import publish
from apps.scheduling import beat
from apps.scheduling.models import ActionType, CronJob, CronRun, ScheduleType
from apps.scheduling.schedule import next_after_fire, slot_for_fire
from apps.scheduling.services import job_fail, job_update_publish

logger = logging.getLogger(__name__)


def cron_job_run_now(*, tenant, job: CronJob) -> CronRun:
    """Run the job's action now, outside its schedule (its next_run_at does not move)."""
    now = timezone.now()
    with transaction.atomic():
        job = CronJob.objects.select_for_update().get(pk=job.pk, tenant=tenant)
        run = _run_start(
            job, scheduled_for=now.replace(microsecond=now.microsecond // 1000 * 1000), now=now, manual=True
        )
        job.save(update_fields=["run_count", "last_run_at", "updated_at"])
        _run_perform(job, run)
    return run


def cron_job_fire(*, job_id, fired_at: dt.datetime | None = None) -> CronRun | None:
    """Beat's fire of a job: record the run of the slot it stands for and perform the action,
    once per slot however many times it is fired (a second beat, a redelivered task: the job's
    row lock orders them and the unique (job, scheduled_for) key refuses a second run).

    Nothing runs for a job that is not active or whose tenant is suspended."""
    now = timezone.now()
    fired_at = fired_at or now
    with transaction.atomic():
        # Only the job row: the tenant row is not locked by every fire of its jobs.
        job = CronJob.objects.select_for_update(of=("self",)).select_related("tenant").filter(pk=job_id).first()
        if job is None or job.status != CronJob.Status.ACTIVE or not job.enabled:
            return None
        slot = slot_for_fire(job, fired_at=fired_at, tolerance=settings.CRON_FIRE_TOLERANCE_SECONDS)
        if slot.scheduled_for is None:
            logger.info("cron job %s fired with no slot due (%s)", job.pk, slot.skip_reason)
            return None
        if CronRun.objects.filter(job=job, scheduled_for=slot.scheduled_for).exists():
            logger.info("cron job %s: the slot %s already ran (a second fire)", job.pk, slot.scheduled_for)
            return None
        next_run = next_after_fire(job, scheduled_for=slot.scheduled_for, fired_at=fired_at)
        if not job.tenant.is_active:
            # A suspended tenant's jobs do not fire; their schedule moves on.
            job.next_run_at = next_run
            job.save(update_fields=["next_run_at", "updated_at"])
            return None
        run = _run_start(job, scheduled_for=slot.scheduled_for, now=now, manual=False)
        job.next_run_at = next_run
        if job.schedule_type == ScheduleType.ONCE:
            job.status, job.enabled = CronJob.Status.COMPLETED, False
        job.save(update_fields=["run_count", "last_run_at", "next_run_at", "status", "enabled", "updated_at"])
        if job.schedule_type == ScheduleType.ONCE:
            beat.periodic_task_retire(job)
        _run_perform(job, run)
    return run


def _run_start(job: CronJob, *, scheduled_for: dt.datetime, now: dt.datetime, manual: bool) -> CronRun:
    """The run, not saved yet: `_run_perform` writes it (an event job's once, already finished)."""
    run = CronRun(
        tenant_id=job.tenant_id,
        job=job,
        scheduled_for=scheduled_for,
        trigger=CronRun.Trigger.MANUAL if manual else CronRun.Trigger.SCHEDULE,
        started_at=now,
        lateness_ms=max(0, int((now - scheduled_for).total_seconds() * 1000)),
    )
    job.run_count += 1
    job.last_run_at = now
    return run


def _run_perform(job: CronJob, run: CronRun) -> None:
    """The action, through the same services as the API; inside the fire's transaction. A
    failure of the action fails the run (and the job, when it can never succeed again), not the
    transaction that records it."""
    if job.action_type == ActionType.EVENT:
        _event_run_perform(job, run)
        return
    run.save(force_insert=True)
    job_update_publish(job, "fired", run=run)
    try:
        with transaction.atomic():
            _prompt_agent(job, run)
    except _JobBroken as broken:
        job_fail(job, str(broken))
        _run_end(run, status=CronRun.Status.FAILED, error=str(broken))
        job_update_publish(job, "failed", run=run)
        return
    except APIException as exc:  # budget spent, agent disabled, session archived, limits
        _run_end(run, status=CronRun.Status.FAILED, error=str(exc.detail))
        job_update_publish(job, "failed", run=run)
        return
    except Exception as exc:
        logger.exception("cron job %s: the action failed", job.pk)
        _run_end(run, status=CronRun.Status.FAILED, error=f"The action failed: {type(exc).__name__}")
        job_update_publish(job, "failed", run=run)
        return
    if run.status != CronRun.Status.RUNNING:
        job_update_publish(job, "finished", run=run)
    if job.status == CronJob.Status.COMPLETED:
        job_update_publish(job, "completed", run=run)


class _JobBroken(Exception):
    """The job can never run as it is (its agent or session was deleted)."""


def _event_run_perform(job: CronJob, run: CronRun) -> None:
    """An event job's run: the same events as any run (`fired` with the run running, the topic,
    `finished`), but the run row is written once, already finished, and without a savepoint: 9
    queries a fire instead of 12, which a burst of 100 jobs due in one second pays 100 times on
    two worker processes. The action is one INSERT of the job's validated payload into this
    database, so it fails only when the database does, and then the whole fire rolls back (the
    run and its events together) instead of recording a failed run it could not write either."""
    job_update_publish(job, "fired", run=run)
    publish(
        job.tenant_id,
        ev.CRON_EVENT,
        {"topic": job.event_topic, "payload": job.payload, "job_id": str(job.pk), "run_id": str(run.pk)},
    )
    run.status, run.finished_at = CronRun.Status.SUCCEEDED, timezone.now()
    run.save(force_insert=True)
    job_update_publish(job, "finished", run=run)
    if job.status == CronJob.Status.COMPLETED:
        job_update_publish(job, "completed", run=run)


def _prompt_agent(job: CronJob, run: CronRun) -> None:
    if job.agent_id is None:
        raise _JobBroken("Its agent was deleted; give it another agent with PATCH.")
    if job.new_session_per_run:
        session = session_create(
            tenant=job.tenant,
            agent=job.agent,
            created_by=job.created_by,
            title=f"{job.name} · {run.scheduled_for:%Y-%m-%d %H:%M} UTC"[:200],
            metadata={"cron_job_id": str(job.pk), "cron_run_id": str(run.pk)},
        )
    elif job.session_id is None:
        raise _JobBroken('Its session was deleted; give it another session (or "new") with PATCH.')
    else:
        session = job.session
    _message, turn = message_post(
        tenant=job.tenant,
        session=session,
        role="user",
        parts=[{"type": "text", "text": job.prompt}],
        author=job.created_by,
        idempotency_key=f"cron-run:{run.pk}",
    )
    run.turn = turn
    run.save(update_fields=["turn", "updated_at"])


def _run_end(run: CronRun, *, status: str, error: str = "") -> None:
    run.status, run.error, run.finished_at = status, error[:2000], timezone.now()
    run.save(update_fields=["status", "error", "finished_at", "updated_at"])


ORPHAN_RUN_AFTER = dt.timedelta(minutes=1)


def cron_runs_settle(*, limit: int = 500) -> int:
    """Runs whose turn has ended take the turn's outcome (beat runs this every
    CRON_RUN_SETTLE_SECONDS). Compare-and-set on the run's status, so two sweeps settle once."""
    settled = 0
    runs = (
        CronRun.objects.filter(status=CronRun.Status.RUNNING, turn__status__in=Turn.FINAL)
        .select_related("turn", "job")
        .order_by("started_at")[:limit]
    )
    for run in runs:
        ok = run.turn.status == Turn.Status.COMPLETED
        status = CronRun.Status.SUCCEEDED if ok else CronRun.Status.FAILED
        error = "" if ok else (run.turn.error or f"The turn was {run.turn.status}.")[:2000]
        with transaction.atomic():
            changed = CronRun.objects.filter(pk=run.pk, status=CronRun.Status.RUNNING).update(
                status=status,
                error=error,
                finished_at=run.turn.finished_at or timezone.now(),
                updated_at=timezone.now(),
            )
            if changed:
                run.refresh_from_db()
                job_update_publish(run.job, "finished" if ok else "failed", run=run)
                settled += 1
    # A run whose turn is gone (its session was deleted) would wait for ever.
    orphans = CronRun.objects.filter(
        status=CronRun.Status.RUNNING,
        turn__isnull=True,
        job__action_type=ActionType.AGENT,
        started_at__lt=timezone.now() - ORPHAN_RUN_AFTER,
    )
    settled += orphans.update(
        status=CronRun.Status.FAILED,
        error="Its turn was deleted (with its session).",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return settled


def periodic_tasks_prune() -> int:
    """Beat entries of jobs that no longer exist (their tenant was deleted: the jobs went by
    cascade, which the beat table does not follow). Beat's own and operators' entries stay."""
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    names = PeriodicTask.objects.filter(name__startswith="cron:").values_list("name", flat=True)
    live = {f"cron:{pk}" for pk in CronJob.objects.values_list("pk", flat=True)}
    stale = [name for name in names if name not in live]
    if stale:
        PeriodicTask.objects.filter(name__in=stale).delete()
        PeriodicTasks.update_changed()
    return len(stale)
