"""Beat's scheduler (apps/scheduling/scheduler.py) in this process, against the test database and
the real broker: a burst of due jobs goes out in one tick, and the database is asked whether the
schedule changed at most every CRON_BEAT_CHANGE_CHECK_MS."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from celery.signals import before_task_publish
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from agentplatform.celery import app as celery_app
from apps.scheduling.beat import FIRE_TASK
from apps.scheduling.inputs import job_fields
from apps.scheduling.scheduler import JobScheduler
from apps.scheduling.services import cron_job_create

# The scheduler commits and may close the connection between ticks, as in beat.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent():
    """The job fires beat publishes to the broker (task name, job id), drained afterwards."""
    fires: list[str] = []

    def record(sender=None, body=None, headers=None, **_kwargs):
        if sender == FIRE_TASK and headers and "periodic_task_name" in headers:
            fires.append(headers["periodic_task_name"])

    before_task_publish.connect(record, weak=False, dispatch_uid="test-beat-scheduler")
    yield fires
    before_task_publish.disconnect(dispatch_uid="test-beat-scheduler")
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")


def _due_cron_jobs(tenant, count: int) -> list[str]:
    tenant.settings = {"cron_min_interval_seconds": 1}
    tenant.save()
    jobs = [
        cron_job_create(
            tenant=tenant,
            fields=job_fields(
                tenant, {"name": f"due-{n}", "scheduleType": "cron", "expression": "* * * * *", "eventTopic": "t"}
            ),
        )
        for n in range(count)
    ]
    names = [job.periodic_task_name for job in jobs]
    # As if beat last sent them two minutes ago: their minute is due now.
    PeriodicTask.objects.filter(name__in=names).update(last_run_at=timezone.now() - dt.timedelta(minutes=2))
    PeriodicTasks.update_changed()
    return names


def test_beat_sends_every_due_job_in_one_tick(tenant, sent):
    if timezone.now().second >= 57:  # the second tick must not reach the next minute
        time.sleep(61 - timezone.now().second)
    names = _due_cron_jobs(tenant, 12)
    scheduler = JobScheduler(app=celery_app, lazy=False)

    delay = scheduler.tick()

    assert sorted(sent) == sorted(names)
    assert delay > 0  # nothing else due: beat sleeps until the next minute (or its max interval)
    scheduler.tick()
    assert len(sent) == len(names)  # sent once: each entry's next time is the next minute


def test_beat_asks_the_database_about_changes_at_most_every_check_interval(tenant, settings):
    settings.CRON_BEAT_CHANGE_CHECK_MS = 300
    scheduler = JobScheduler(app=celery_app, lazy=False)
    scheduler.schedule_changed()  # the first check, counted from now

    PeriodicTasks.update_changed()
    with CaptureQueriesContext(connection) as queries:
        assert scheduler.schedule_changed() is False
    assert len(queries.captured_queries) == 0

    time.sleep(0.35)
    assert scheduler.schedule_changed() is True
