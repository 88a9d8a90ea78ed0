"""Scheduling's rows for the isolation probe (tests.factories.populate_tenant)."""

from __future__ import annotations

from django.utils import timezone


def populate_scheduling(tenant) -> list[str]:
    """A cron job with a run; the job prompts the tenant's agent in its session."""
    from apps.agents.models import Agent
    from apps.conversations.models import ChatSession, Turn
    from apps.scheduling.models import CronJob, CronRun

    now = timezone.now()
    job = CronJob.objects.create(
        tenant=tenant,
        name=f"{tenant.slug}-nightly",
        schedule_type="cron",
        expression="0 3 * * *",
        schedule_since=now,
        action_type="agent",
        agent=Agent.objects.filter(tenant=tenant).first(),
        prompt="nightly summary",
        session=ChatSession.objects.filter(tenant=tenant).first(),
        new_session_per_run=False,
        next_run_at=now,
    )
    run = CronRun.objects.create(
        tenant=tenant, job=job, scheduled_for=now, started_at=now, turn=Turn.objects.filter(tenant=tenant).first()
    )
    return [str(job.pk), str(run.pk), job.name]
