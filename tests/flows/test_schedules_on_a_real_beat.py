"""Jobs fired by a real celery beat (two of them, as when an operator starts a second by
mistake) and run by a real worker: a once-job prompts its agent once and completes, an interval
job runs once per period, and each fire is on the event log as job_update."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import pytest
from django.utils import timezone

from apps.conversations.models import Turn
from apps.events.models import Event
from apps.scheduling import services
from apps.scheduling.inputs import job_fields
from apps.scheduling.models import CronJob, CronRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def agent(tenant):
    from apps.agents.models import Agent
    from apps.agents.services import tenant_bootstrap_agents
    from apps.tenancy.principal import Actor

    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    return Agent.objects.get(tenant=tenant, name="assistant")


def _wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    return condition()


def test_two_beats_fire_each_slot_once_on_a_real_worker(tenant, agent, real_worker, start_beat):
    tenant.settings = {"cron_min_interval_seconds": 1}
    tenant.save()
    start_beat()
    start_beat()
    at = timezone.now() + dt.timedelta(seconds=3)
    once = services.cron_job_create(
        tenant=tenant,
        fields=job_fields(
            tenant,
            {
                "name": "soon",
                "scheduleType": "once",
                "atTimestamp": int(at.timestamp() * 1000),
                "agent": agent.name,
                "prompt": "the scheduled hello",
            },
        ),
    )
    every = services.cron_job_create(
        tenant=tenant,
        fields=job_fields(
            tenant, {"name": "tick", "scheduleType": "interval", "intervalMs": 2000, "eventTopic": "tick"}
        ),
    )

    done = _wait_for(lambda: CronRun.objects.filter(job=once, status=CronRun.Status.SUCCEEDED).first(), timeout=40)
    assert done is not None, list(CronRun.objects.filter(job=once).values())
    assert done.scheduled_for == once.at
    turn = Turn.objects.get(pk=done.turn_id)
    assert turn.status == Turn.Status.COMPLETED
    assert "the scheduled hello" in turn.output_message.text
    once.refresh_from_db()
    assert once.status == CronJob.Status.COMPLETED
    assert once.run_count == 1

    _wait_for(lambda: CronRun.objects.filter(job=every).count() >= 3, timeout=20)
    time.sleep(1.0)  # a duplicate fire of the last slot would land within this
    services.cron_job_pause(tenant=tenant, job=every)
    runs = list(CronRun.objects.filter(job=every).order_by("scheduled_for"))
    assert len(runs) >= 3
    gaps = [(b.scheduled_for - a.scheduled_for).total_seconds() for a, b in itertools.pairwise(runs)]
    # Two beats each send every period (out of phase); one run per period, a period apart.
    assert all(gap >= 1.99 for gap in gaps), gaps
    assert CronRun.objects.filter(job=once).count() == 1

    phases = set(
        Event.objects.filter(tenant=tenant, type="job_update", data__job_id=str(once.pk)).values_list(
            "data__phase", flat=True
        )
    )
    assert {"created", "fired", "completed", "finished"} <= phases
    assert Event.objects.filter(tenant=tenant, type="cron_event", data__topic="tick").count() == len(runs)
