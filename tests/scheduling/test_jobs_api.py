"""The cron API: each schedule type, the reference servers' errors, the job's life (pause,
resume, run now, delete), limits, the scheduler routes, the time agent and job_update events."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from apps.events.models import Event
from apps.scheduling.models import CronJob, CronRun

pytestmark = pytest.mark.django_db


def _create(client, **body):
    return client.post("/api/cron/jobs", body, format="json")


def test_each_schedule_type_is_created_with_its_beat_entry(owner_client, agent, in_ms):
    cron = _create(
        owner_client,
        name="weekday",
        scheduleType="cron",
        expression="0 7 * * 1-5",
        timezone="Europe/Paris",
        eventTopic="daily.report",
        payload={"k": 1},
    )
    assert cron.status_code == 201, cron.json()
    job = cron.json()["job"]
    assert job["schedule"] == {
        "type": "cron",
        "expression": "0 7 * * 1-5",
        "timezone": "Europe/Paris",
        "description": "At 07:00, Monday through Friday (Europe/Paris)",
    }
    assert job["action"] == {"type": "event", "eventTopic": "daily.report", "payload": {"k": 1}}
    assert job["status"] == "active"
    assert job["runCount"] == 0
    assert job["nextRunAt"] > 0
    task = PeriodicTask.objects.get(name=f"cron:{job['id']}")
    assert task.enabled
    assert task.crontab.hour == "7"
    assert str(task.crontab.timezone) == "Europe/Paris"

    at = in_ms(3600)
    once = _create(owner_client, name="later", scheduleType="once", atTimestamp=at, agent=agent.name, prompt="hi")
    assert once.status_code == 201, once.json()
    body = once.json()["job"]
    assert body["schedule"]["atTimestamp"] == at
    assert body["nextRunAt"] == at
    assert body["action"] == {
        "type": "agent",
        "agent": agent.name,
        "agentId": str(agent.pk),
        "prompt": "hi",
        "session": "new",
    }
    task = PeriodicTask.objects.get(name=f"cron:{body['id']}")
    assert task.one_off
    assert int(task.clocked.clocked_time.timestamp() * 1000) == at

    every = _create(owner_client, name="tick", scheduleType="interval", intervalMs=120_000, eventTopic="tick")
    assert every.status_code == 201, every.json()
    assert every.json()["job"]["schedule"]["intervalMs"] == 120_000
    task = PeriodicTask.objects.get(name=f"cron:{every.json()['job']['id']}")
    assert task.interval.every == 120
    assert task.interval.period == "seconds"

    listed = owner_client.get("/api/cron/jobs").json()
    assert listed["count"] == 3
    assert [j["name"] for j in listed["jobs"]] == ["weekday", "later", "tick"]
    assert owner_client.get("/api/cron/jobs?limit=1").json()["next"]


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (
            {"scheduleType": "cron", "expression": "* * * * *", "eventTopic": "t"},
            "Missing or invalid field: name",
            "name",
        ),
        ({"name": "", "scheduleType": "cron"}, "Missing or invalid field: name", "name"),
        ({"name": "x", "eventTopic": "t"}, "Missing or invalid field: scheduleType", "scheduleType"),
        (
            {"name": "x", "scheduleType": "cron", "eventTopic": "t"},
            "Cron schedule requires an expression field",
            "expression",
        ),
        (
            {"name": "x", "scheduleType": "cron", "expression": "99 * * * *", "eventTopic": "t"},
            "Invalid cron expression: '99 * * * *'",
            "expression",
        ),
        (
            {
                "name": "x",
                "scheduleType": "cron",
                "expression": "0 9 * * *",
                "timezone": "Nowhere/City",
                "eventTopic": "t",
            },
            "Invalid timezone: 'Nowhere/City'",
            "timezone",
        ),
        (
            {"name": "x", "scheduleType": "once", "eventTopic": "t"},
            "Once schedule requires an atTimestamp field",
            "atTimestamp",
        ),
        (
            {"name": "x", "scheduleType": "once", "atTimestamp": 1000, "eventTopic": "t"},
            "Invalid atTimestamp: the time is in the past",
            "atTimestamp",
        ),
        (
            {"name": "x", "scheduleType": "interval", "eventTopic": "t"},
            "Interval schedule requires an intervalMs field",
            "intervalMs",
        ),
        (
            {"name": "x", "scheduleType": "interval", "intervalMs": 1500, "eventTopic": "t"},
            "Invalid intervalMs: must be a whole number",
            "intervalMs",
        ),
        (
            {"name": "x", "scheduleType": "interval", "intervalMs": 30_000, "eventTopic": "t"},
            "below this tenant's minimum interval of 60000 ms",
            "intervalMs",
        ),
        (
            {"name": "x", "scheduleType": "interval", "intervalMs": 60_000},
            "Missing or invalid field: eventTopic",
            "eventTopic",
        ),
        (
            {"name": "x", "scheduleType": "interval", "intervalMs": 60_000, "agent": "ghost", "prompt": "p"},
            "Unknown agent: 'ghost'",
            "agent",
        ),
        (
            {"name": "x", "scheduleType": "interval", "intervalMs": 60_000, "eventTopic": "t", "payload": [1]},
            "Missing or invalid field: payload",
            "payload",
        ),
    ],
)
def test_bad_jobs_get_the_reference_errors(owner_client, agent, body, error, field):
    response = _create(owner_client, **body)
    assert response.status_code == 400, response.json()
    assert error in response.json()["error"]
    assert field in response.json()["fields"]
    assert not CronJob.objects.exists()


def test_a_cron_more_often_than_the_minimum_is_refused(owner_client, tenant):
    tenant.settings = {"cron_min_interval_seconds": 300}
    tenant.save()
    response = _create(owner_client, name="x", scheduleType="cron", expression="*/2 * * * *", eventTopic="t")
    assert response.status_code == 400
    assert "minimum interval of 300 s" in response.json()["error"]
    assert (
        _create(owner_client, name="y", scheduleType="cron", expression="*/5 * * * *", eventTopic="t").status_code
        == 201
    )


def test_max_jobs_is_a_tenant_setting(owner_client, tenant):
    assert (
        owner_client.patch("/api/tenants/current", {"settings": {"cron_max_jobs": 2}}, format="json").status_code == 200
    )
    for n in range(2):
        assert (
            _create(owner_client, name=f"j{n}", scheduleType="interval", intervalMs=60_000, eventTopic="t").status_code
            == 201
        )
    third = _create(owner_client, name="j3", scheduleType="interval", intervalMs=60_000, eventTopic="t")
    assert third.status_code == 409
    assert "cron_max_jobs" in third.json()["message"]


def test_pause_resume_patch_run_now_and_delete(owner_client, tenant):
    job = _create(owner_client, name="t", scheduleType="interval", intervalMs=60_000, eventTopic="topic.a").json()[
        "job"
    ]
    url = f"/api/cron/jobs/{job['id']}"
    paused = owner_client.post(f"{url}/pause").json()["job"]
    assert paused["status"] == "paused"
    assert paused["nextRunAt"] is None
    assert not paused["enabled"]
    assert not PeriodicTask.objects.get(name=f"cron:{job['id']}").enabled
    assert owner_client.post(f"{url}/pause").status_code == 409
    resumed = owner_client.post(f"{url}/resume").json()["job"]
    assert resumed["status"] == "active"
    assert resumed["nextRunAt"]
    assert PeriodicTask.objects.get(name=f"cron:{job['id']}").enabled
    assert owner_client.post(f"{url}/resume").status_code == 409

    changed = owner_client.patch(
        url, {"scheduleType": "cron", "expression": "0 12 * * *", "name": "noon"}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["job"]["schedule"]["expression"] == "0 12 * * *"
    assert changed.json()["job"]["action"]["eventTopic"] == "topic.a"  # the action stayed
    task = PeriodicTask.objects.get(name=f"cron:{job['id']}")
    assert task.crontab.hour == "12"
    assert task.interval is None
    assert owner_client.patch(url, {"expression": "bad"}, format="json").status_code == 400

    ran = owner_client.post(f"{url}/run")
    assert ran.status_code == 202
    assert ran.json()["run"]["status"] == "succeeded"
    assert ran.json()["run"]["trigger"] == "manual"
    event = Event.objects.get(tenant=tenant, type="cron_event")
    assert event.data["topic"] == "topic.a"
    assert event.data["job_id"] == job["id"]
    runs = owner_client.get(f"/api/cron/runs?job={job['id']}").json()
    assert runs["count"] == 1
    assert runs["runs"][0]["id"] == ran.json()["run"]["id"]
    assert owner_client.get(f"{url}").json()["job"]["runCount"] == 1

    deleted = owner_client.delete(url)
    assert deleted.json() == {"success": True, "taskId": job["id"]}
    assert not PeriodicTask.objects.filter(name=f"cron:{job['id']}").exists()
    assert owner_client.get(url).status_code == 404
    phases = [e.data["phase"] for e in Event.objects.filter(tenant=tenant, type="job_update").order_by("id")]
    assert phases == ["created", "paused", "resumed", "updated", "fired", "finished", "deleted"]


def test_run_now_of_an_agent_job_starts_a_turn_in_a_new_session(
    owner_client, agent, django_capture_on_commit_callbacks
):
    job = _create(
        owner_client, name="ask", scheduleType="cron", expression="0 9 * * *", agent=agent.name, prompt="hello there"
    ).json()["job"]
    with django_capture_on_commit_callbacks(execute=True):
        run = owner_client.post(f"/api/cron/jobs/{job['id']}/run").json()["run"]
    assert run["turnId"]
    assert run["status"] == "running"
    from apps.conversations.models import Turn
    from apps.scheduling.runs import cron_runs_settle

    turn = Turn.objects.get(pk=run["turnId"])
    assert turn.status == Turn.Status.COMPLETED
    assert "hello there" in turn.output_message.text
    assert turn.session.metadata["cron_job_id"] == job["id"]
    assert cron_runs_settle() == 1
    settled = owner_client.get("/api/cron/runs?status=succeeded").json()["runs"]
    assert [r["id"] for r in settled] == [run["id"]]


def test_scheduler_routes(owner_client, tenant):
    job = _create(owner_client, name="t", scheduleType="interval", intervalMs=60_000, eventTopic="t").json()["job"]
    status = owner_client.get("/api/settings/scheduler/status").json()
    assert status["jobsActive"] == 1
    assert status["nextFire"]
    assert status["beatAlive"] is False
    assert owner_client.get("/api/settings/scheduler/jobs").json()["jobs"][0]["id"] == job["id"]
    cancelled = owner_client.post(f"/api/settings/scheduler/cancel/{job['id']}")
    assert cancelled.json() == {"success": True, "taskId": job["id"]}
    assert owner_client.get("/api/settings/scheduler/jobs").json()["count"] == 0


def test_the_beat_heartbeat_is_what_beat_publishes(monkeypatch):
    from apps.scheduling import beat
    from apps.scheduling.beat import FIRE_TASK, FIRED_AT_HEADER, _stamp_beat_publish, beat_last_publish

    monkeypatch.setattr(beat, "_last_heartbeat", None)

    headers = {"periodic_task_name": "cron:x"}
    _stamp_beat_publish(sender=FIRE_TASK, headers=headers)
    assert FIRED_AT_HEADER in headers
    assert beat_last_publish() is not None
    untouched = {"id": "1"}
    _stamp_beat_publish(sender=FIRE_TASK, headers=untouched)  # not from beat: no stamp
    assert FIRED_AT_HEADER not in untouched


def test_time_agent_schedules_a_prompt(owner_client, agent):
    response = owner_client.post(
        "/api/time_agent", {"prompt": "check the oven", "schedule_time": "2099-01-01T09:00:00Z"}, format="json"
    )
    assert response.status_code == 201, response.json()
    job = response.json()["job"]
    assert job["origin"] == "time_agent"
    assert job["schedule"]["at"] == "2099-01-01T09:00:00Z"
    assert job["action"]["agent"] == agent.name
    assert job["action"]["prompt"] == "check the oven"
    past = owner_client.post("/api/time_agent", {"prompt": "x", "schedule_time": "2001-01-01T09:00:00Z"}, format="json")
    assert past.status_code == 400
    assert "past" in past.json()["error"]
    naive = owner_client.post("/api/time_agent", {"prompt": "x", "schedule_time": "2099-01-01T09:00"}, format="json")
    assert naive.status_code == 400
    assert "UTC offset" in naive.json()["error"]
    assert (
        owner_client.post("/api/time_agent", {"schedule_time": "2099-01-01T09:00:00Z"}, format="json").json()["error"]
        == "Missing or invalid field: prompt"
    )


def test_viewers_read_members_use_the_time_agent_and_admins_manage_jobs(make_client, tenant, owner_client, agent):
    job = _create(owner_client, name="t", scheduleType="interval", intervalMs=60_000, eventTopic="t").json()["job"]
    viewer = make_client(tenant, role="viewer")
    member = make_client(tenant, role="member")
    assert viewer.get("/api/cron/jobs").status_code == 200
    assert viewer.post(f"/api/cron/jobs/{job['id']}/pause").status_code == 403
    assert member.post(f"/api/cron/jobs/{job['id']}/run").status_code == 403
    assert _create(member, name="m", scheduleType="interval", intervalMs=60_000, eventTopic="t").status_code == 403
    later = member.post("/api/time_agent", {"prompt": "p", "schedule_time": "2099-01-01T00:00:00Z"}, format="json")
    assert later.status_code == 201
    assert CronRun.objects.count() == 0
