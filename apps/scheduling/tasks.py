"""Beat's tasks for jobs: thin, idempotent, acks_late (the project default)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from apps.scheduling import runs
from apps.scheduling.beat import FIRED_AT_HEADER


@shared_task(bind=True, ignore_result=True)
def cron_job_fire(self, job_id: str) -> str | None:
    """Sent by beat for the job's PeriodicTask `cron:<job_id>`; the header says when beat sent it
    (apps/scheduling/beat.py), which decides the slot. A redelivery finds the slot taken."""
    raw = getattr(self.request, FIRED_AT_HEADER, None)
    if raw is None and isinstance(getattr(self.request, "headers", None), dict):
        raw = self.request.headers.get(FIRED_AT_HEADER)
    fired_at = dt.datetime.fromisoformat(raw) if raw else None
    run = runs.cron_job_fire(job_id=job_id, fired_at=fired_at)
    return str(run.pk) if run else None


@shared_task(ignore_result=True)
def settle_cron_runs() -> int:
    return runs.cron_runs_settle()


@shared_task(ignore_result=True)
def prune_beat_entries() -> int:
    return runs.periodic_tasks_prune()
