"""The Schedules page without a browser: only admins write jobs (a member's or viewer's POST is
refused and changes nothing), the form is parsed by the API's inputs (its messages, inline), and
the preview describes a schedule in words."""

from __future__ import annotations

import pytest

from apps.agents.services import tenant_bootstrap_agents
from apps.scheduling import services
from apps.scheduling.inputs import job_fields
from apps.scheduling.models import CronJob, CronRun
from apps.tenancy.principal import Actor
from tests.factories import MembershipFactory, TenantFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def event_job(tenant, name: str = "nightly report") -> CronJob:
    fields = job_fields(
        tenant, {"name": name, "scheduleType": "cron", "expression": "0 7 * * 1-5", "eventTopic": "reports.nightly"}
    )
    return services.cron_job_create(tenant=tenant, fields=fields)


def test_members_and_viewers_read_jobs_but_every_write_is_refused(client):
    tenant = TenantFactory()
    job = event_job(tenant)
    writes = [
        ("/schedules/new/", {"name": "x", "schedule_type": "interval", "interval_seconds": "3600"}),
        (f"/schedules/{job.pk}/", {"name": "renamed", "schedule_type": "cron", "expression": "0 8 * * *"}),
        (f"/schedules/{job.pk}/run/", {}),
        (f"/schedules/{job.pk}/pause/", {}),
        (f"/schedules/{job.pk}/delete/", {}),
    ]
    for role in ("viewer", "member"):
        client.force_login(MembershipFactory(tenant=tenant, role=role).user)
        page = client.get("/schedules/")
        assert page.status_code == 200
        text = page.content.decode()
        assert "nightly report" in text
        assert "At 07:00, Monday through Friday" in text
        assert "New job" not in text
        assert "Run now" not in text
        assert "Pause" not in text
        assert "Run now" not in client.get(f"/schedules/{job.pk}/").content.decode()
        for url, data in writes:
            assert client.post(url, data).status_code == 403, (role, url)
    job.refresh_from_db()
    assert (job.name, job.expression, job.status, job.run_count) == ("nightly report", "0 7 * * 1-5", "active", 0)
    assert CronJob.objects.filter(tenant=tenant).count() == 1


def test_an_admin_creates_an_event_job_and_sees_the_apis_messages_inline(client):
    tenant = TenantFactory()
    client.force_login(MembershipFactory(tenant=tenant, role="admin").user)
    base = {"name": "ping", "schedule_type": "interval", "timezone": "UTC", "action_type": "event"}

    bad_zone = client.post("/schedules/new/", {**base, "timezone": "Mars/Base", "interval_seconds": "3600"})
    assert bad_zone.status_code == 400
    assert 'id="f-timezone-error"' in bad_zone.content.decode()
    assert "Mars/Base" in bad_zone.content.decode()

    no_topic = client.post("/schedules/new/", {**base, "interval_seconds": "3600", "event_topic": ""})
    assert no_topic.status_code == 400
    assert "Missing or invalid field: eventTopic" in no_topic.content.decode()

    hourly = {**base, "interval_seconds": "3600", "event_topic": "t"}
    bad_payload = client.post("/schedules/new/", {**hourly, "payload": "{"})
    assert 'id="f-payload-error"' in bad_payload.content.decode()

    too_often = client.post("/schedules/new/", {**base, "interval_seconds": "1", "event_topic": "t"})
    assert 'id="f-interval_seconds-error"' in too_often.content.decode()
    assert "minimum interval" in too_often.content.decode()
    assert not CronJob.objects.filter(tenant=tenant).exists()

    created = client.post("/schedules/new/", {**hourly, "payload": '{"a": 1}'})
    assert created.status_code == 302
    job = CronJob.objects.get(tenant=tenant)
    assert (job.interval_seconds, job.event_topic, job.payload) == (3600, "t", {"a": 1})
    assert created["Location"] == f"/schedules/{job.pk}/"

    ran = client.post(f"/schedules/{job.pk}/run/", {"from": "job"}, HTTP_HX_REQUEST="true")
    assert ran.status_code == 200
    assert "Succeeded" in ran.content.decode()
    assert CronRun.objects.filter(job=job, trigger="manual", status="succeeded").count() == 1

    client.post(f"/schedules/{job.pk}/delete/", {"from": "list"})
    assert not CronJob.objects.filter(pk=job.pk).exists()


def test_an_agent_job_keeps_its_own_session_choice_when_edited(client):
    tenant = TenantFactory()
    agent = tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    client.force_login(MembershipFactory(tenant=tenant, role="admin").user)
    form = {
        "name": "standup",
        "schedule_type": "once",
        "timezone": "Europe/Paris",
        "at": "2099-03-01T09:30",
        "action_type": "agent",
        "agent": str(agent.pk),
        "prompt": "Summarise yesterday",
        "session": "new",
    }
    assert client.post("/schedules/new/", form).status_code == 302
    job = CronJob.objects.get(tenant=tenant)
    assert job.at.isoformat() == "2099-03-01T08:30:00+00:00"  # 09:30 in Paris, winter time
    page = client.get(f"/schedules/{job.pk}/").content.decode()
    assert 'value="2099-03-01T09:30"' in page  # shown back in the job's timezone
    assert client.post(f"/schedules/{job.pk}/", {**form, "prompt": "Summarise today"}).status_code == 302
    job.refresh_from_db()
    assert (job.prompt, job.new_session_per_run, job.agent_id) == ("Summarise today", True, agent.pk)


def test_the_preview_describes_a_schedule_or_says_what_is_wrong(client):
    client.force_login(MembershipFactory(role="viewer").user)
    good = client.get("/schedules/preview/", {"schedule_type": "cron", "expression": "0 7 * * 1-5", "timezone": "UTC"})
    assert "At 07:00, Monday through Friday (UTC)" in good.content.decode()
    assert "First run" in good.content.decode()
    bad = client.get("/schedules/preview/", {"schedule_type": "cron", "expression": "61 * * * *"})
    assert "preview-error" in bad.content.decode()
    interval = client.get("/schedules/preview/", {"schedule_type": "interval", "interval_seconds": "5400"})
    assert "Every 1 hour 30 minutes" in interval.content.decode() or "Every 90 minutes" in interval.content.decode()
