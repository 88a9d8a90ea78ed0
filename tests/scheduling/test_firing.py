"""What a beat fire does, called as the worker calls it: one run per slot however often a slot
is fired, the job's next run, once-jobs completing, a suspended tenant's jobs not firing, a job
whose agent is gone failing with the reason."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.events.models import Event
from apps.scheduling import runs, services
from apps.scheduling.inputs import job_fields
from apps.scheduling.models import CronJob, CronRun
from apps.tenancy.models import Tenant

pytestmark = pytest.mark.django_db


def _job(tenant, **body) -> CronJob:
    return services.cron_job_create(tenant=tenant, fields=job_fields(tenant, {"name": "j", **body}))


def test_a_double_fire_of_one_cron_slot_makes_one_run(tenant):
    job = _job(tenant, scheduleType="cron", expression="*/5 * * * *", eventTopic="t")
    slot = job.next_run_at
    first = runs.cron_job_fire(job_id=job.pk, fired_at=slot + dt.timedelta(milliseconds=30))
    again = runs.cron_job_fire(job_id=job.pk, fired_at=slot + dt.timedelta(milliseconds=70))
    assert first is not None
    assert again is None
    assert CronRun.objects.filter(job=job).count() == 1
    assert first.scheduled_for == slot
    assert first.status == "succeeded"
    job.refresh_from_db()
    assert job.run_count == 1
    assert job.next_run_at == slot + dt.timedelta(minutes=5)
    assert Event.objects.filter(tenant=tenant, type="cron_event").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_beats_firing_together_collapse_onto_one_run(tenant):
    """Two workers take the two sends of one slot at the same moment: the job's row lock orders
    them and the second finds the slot taken."""
    job = _job(tenant, scheduleType="cron", expression="*/5 * * * *", eventTopic="t")
    slot = job.next_run_at
    results, barrier = [], threading.Barrier(2)

    def fire():
        barrier.wait()
        try:
            results.append(runs.cron_job_fire(job_id=job.pk, fired_at=slot))
        finally:
            connection.close()

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r is None for r in results) == [False, True]
    assert CronRun.objects.filter(job=job).count() == 1


def test_the_unique_key_refuses_a_second_run_of_a_slot(tenant):
    from django.db import IntegrityError, transaction

    job = _job(tenant, scheduleType="cron", expression="0 * * * *", eventTopic="t")
    now = timezone.now()
    CronRun.objects.create(tenant=tenant, job=job, scheduled_for=job.next_run_at, started_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        CronRun.objects.create(tenant=tenant, job=job, scheduled_for=job.next_run_at, started_at=now)


def test_a_once_job_runs_once_and_completes(tenant):
    at = timezone.now() + dt.timedelta(seconds=30)
    job = _job(tenant, scheduleType="once", atTimestamp=int(at.timestamp() * 1000), eventTopic="t")
    assert runs.cron_job_fire(job_id=job.pk, fired_at=at - dt.timedelta(seconds=10)) is None  # early
    run = runs.cron_job_fire(job_id=job.pk, fired_at=at + dt.timedelta(milliseconds=5))
    assert run is not None
    assert runs.cron_job_fire(job_id=job.pk, fired_at=at + dt.timedelta(milliseconds=9)) is None
    job.refresh_from_db()
    assert job.status == "completed"
    assert job.next_run_at is None
    assert not PeriodicTask.objects.get(name=job.periodic_task_name).enabled
    phases = list(Event.objects.filter(type="job_update").order_by("id").values_list("data__phase", flat=True))
    assert phases == ["created", "fired", "finished", "completed"]


def test_an_interval_job_counts_from_each_fire(tenant, settings):
    settings.CRON_MIN_INTERVAL_SECONDS = 1
    job = _job(tenant, scheduleType="interval", intervalMs=10_000, eventTopic="t")
    task = PeriodicTask.objects.get(name=job.periodic_task_name)
    assert task.last_run_at == job.next_run_at - dt.timedelta(seconds=10)  # beat's first fire = next_run_at
    fired = job.next_run_at + dt.timedelta(milliseconds=20)
    assert runs.cron_job_fire(job_id=job.pk, fired_at=fired).scheduled_for == job.next_run_at
    job.refresh_from_db()
    assert job.next_run_at == fired + dt.timedelta(seconds=10)
    # A second beat, whose own clock for this entry is out of step, fires in between: nothing due.
    assert runs.cron_job_fire(job_id=job.pk, fired_at=fired + dt.timedelta(seconds=4)) is None
    # ... or just before the slot (within the tolerance): it runs the slot, and the next one is
    # still a whole period after the slot, so runs stay 10 s apart.
    job.refresh_from_db()
    slot = job.next_run_at
    early = runs.cron_job_fire(job_id=job.pk, fired_at=slot - dt.timedelta(milliseconds=600))
    assert early.scheduled_for == slot
    job.refresh_from_db()
    assert job.next_run_at == slot + dt.timedelta(seconds=10)


def test_a_suspended_tenants_jobs_do_not_fire(tenant):
    job = _job(tenant, scheduleType="cron", expression="*/5 * * * *", eventTopic="t")
    slot = job.next_run_at
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    assert runs.cron_job_fire(job_id=job.pk, fired_at=slot) is None
    assert not CronRun.objects.exists()
    assert not Event.objects.filter(type="cron_event").exists()
    job.refresh_from_db()
    assert job.next_run_at == slot + dt.timedelta(minutes=5)


def test_a_paused_job_does_not_fire_and_resuming_skips_the_missed_slots(tenant):
    job = _job(tenant, scheduleType="cron", expression="*/5 * * * *", eventTopic="t")
    slot = job.next_run_at
    services.cron_job_pause(tenant=tenant, job=job)
    assert runs.cron_job_fire(job_id=job.pk, fired_at=slot) is None
    job = services.cron_job_resume(tenant=tenant, job=job)
    # beat may fire at once for a slot it missed while the entry was off: that slot is not run.
    assert runs.cron_job_fire(job_id=job.pk, fired_at=timezone.now()) is None
    assert runs.cron_job_fire(job_id=job.pk, fired_at=job.next_run_at) is not None


def test_a_job_whose_agent_was_deleted_fails_with_the_reason(tenant, agent):
    job = _job(tenant, scheduleType="cron", expression="*/5 * * * *", agent=agent.name, prompt="hi")
    agent.delete()
    run = runs.cron_job_fire(job_id=job.pk, fired_at=job.next_run_at)
    assert run.status == "failed"
    assert "agent was deleted" in run.error
    job.refresh_from_db()
    assert job.status == "failed"
    assert "agent was deleted" in job.status_reason
    assert job.next_run_at is None
    assert not PeriodicTask.objects.get(name=job.periodic_task_name).enabled
    failed = Event.objects.filter(type="job_update", data__phase="failed").get()
    assert "agent was deleted" in failed.data["reason"]


def test_a_prompt_job_with_a_fixed_session_keeps_its_answers_there(
    tenant, agent, chat, django_capture_on_commit_callbacks
):
    from apps.conversations.models import Turn

    chat("hello")
    job = _job(
        tenant,
        scheduleType="cron",
        expression="*/5 * * * *",
        agent=agent.name,
        prompt="status?",
        session=chat.session_id,
    )
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.cron_job_fire(job_id=job.pk, fired_at=job.next_run_at)
    turn = Turn.objects.get(pk=run.turn_id)
    assert str(turn.session_id) == chat.session_id
    assert turn.status == Turn.Status.COMPLETED
    assert runs.cron_runs_settle() == 1
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.finished_at is not None


def test_a_deleted_tenants_beat_entries_are_pruned(tenant, other_tenant):
    mine = _job(tenant, scheduleType="cron", expression="0 * * * *", eventTopic="t")
    gone = _job(other_tenant, scheduleType="cron", expression="0 * * * *", eventTopic="t")
    other_tenant.delete()
    assert runs.periodic_tasks_prune() == 1
    assert PeriodicTask.objects.filter(name=mine.periodic_task_name).exists()
    assert not PeriodicTask.objects.filter(name=gone.periodic_task_name).exists()


def test_a_fixed_session_must_be_the_agents(tenant, agent, chat):
    from apps.agents.models import Agent
    from apps.scheduling.inputs import JobInputError

    chat("hello")
    other = Agent.objects.create(tenant=tenant, name="other")
    with pytest.raises(JobInputError, match="another agent"):
        job_fields(
            tenant,
            {
                "name": "j",
                "scheduleType": "cron",
                "expression": "0 * * * *",
                "agent": other.name,
                "prompt": "p",
                "session": chat.session_id,
            },
        )


def test_changing_only_a_once_jobs_time_moves_its_next_run_and_its_beat_entry(tenant):
    at = timezone.now() + dt.timedelta(hours=1)
    job = _job(tenant, scheduleType="once", atTimestamp=int(at.timestamp() * 1000), eventTopic="t")
    later = (at + dt.timedelta(hours=2)).replace(microsecond=0)
    job = services.cron_job_update(tenant=tenant, job=job, changes={"at": later})  # no schedule_type
    assert job.next_run_at == later
    assert PeriodicTask.objects.get(name=job.periodic_task_name).clocked.clocked_time == later
    with pytest.raises(services.JobInputError, match="in the past"):
        services.cron_job_update(tenant=tenant, job=job, changes={"at": timezone.now() - dt.timedelta(minutes=1)})
