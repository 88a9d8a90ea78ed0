"""The job and run JSON (the reference servers' camelCase shapes, with ISO forms of the times),
and the request bodies as the schema documents them. Requests are read by
apps/scheduling/inputs.py, which gives the reference servers' error messages."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.scheduling.models import ActionType, CronJob, CronRun, ScheduleType
from apps.scheduling.schedule import describe


def _ms(value) -> int | None:
    return int(value.timestamp() * 1000) if value else None


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def job_json(job: CronJob) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "type": job.schedule_type,
        "timezone": job.timezone,
        "description": describe(
            schedule_type=job.schedule_type,
            expression=job.expression,
            timezone=job.timezone,
            at=job.at,
            interval_seconds=job.interval_seconds,
        ),
    }
    if job.schedule_type == ScheduleType.CRON:
        schedule["expression"] = job.expression
    elif job.schedule_type == ScheduleType.ONCE:
        schedule["atTimestamp"], schedule["at"] = _ms(job.at), _iso(job.at)
    else:
        schedule["intervalMs"] = job.interval_seconds * 1000
    if job.action_type == ActionType.EVENT:
        action: dict[str, Any] = {"type": "event", "eventTopic": job.event_topic, "payload": job.payload}
    else:
        action = {
            "type": "agent",
            "agent": job.agent.name if job.agent_id and job.agent else None,
            "agentId": str(job.agent_id) if job.agent_id else None,
            "prompt": job.prompt,
            "session": "new" if job.new_session_per_run else (str(job.session_id) if job.session_id else None),
        }
    return {
        "id": str(job.pk),
        "name": job.name,
        "description": job.description,
        "status": job.status,
        "statusReason": job.status_reason or None,
        "enabled": job.enabled,
        "schedule": schedule,
        "action": action,
        "origin": job.origin,
        "nextRunAt": _ms(job.next_run_at),
        "nextRunAtIso": _iso(job.next_run_at),
        "lastRunAt": _ms(job.last_run_at),
        "lastRunAtIso": _iso(job.last_run_at),
        "runCount": job.run_count,
        "createdAt": _ms(job.created_at),
        "createdAtIso": _iso(job.created_at),
    }


def run_json(run: CronRun) -> dict[str, Any]:
    return {
        "id": str(run.pk),
        "jobId": str(run.job_id),
        "jobName": run.job.name,
        "status": run.status,
        "trigger": run.trigger,
        "scheduledFor": _iso(run.scheduled_for),
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
        "latenessMs": run.lateness_ms,
        "turnId": str(run.turn_id) if run.turn_id else None,
        "error": run.error or None,
    }


class _JSONShape(serializers.Serializer):
    """Documents a dict built by job_json / run_json; serializes by calling it."""

    builder = staticmethod(lambda obj: obj)

    def to_representation(self, instance):
        return type(self).builder(instance)


class ScheduleSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ScheduleType.choices)
    expression = serializers.CharField(required=False, help_text="cron: 5 fields, read in `timezone`.")
    atTimestamp = serializers.IntegerField(required=False, help_text="once: Unix milliseconds.")  # noqa: N815
    at = serializers.DateTimeField(required=False, help_text="once: the same time, ISO 8601 UTC.")
    intervalMs = serializers.IntegerField(required=False)  # noqa: N815
    timezone = serializers.CharField()
    description = serializers.CharField(help_text='For people, e.g. "At 07:00, Monday through Friday (UTC)".')


class ActionSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ActionType.choices)
    eventTopic = serializers.CharField(required=False)  # noqa: N815
    payload = serializers.DictField(required=False)
    agent = serializers.CharField(required=False, allow_null=True, help_text="The agent's name (null: deleted).")
    agentId = serializers.UUIDField(required=False, allow_null=True)  # noqa: N815
    prompt = serializers.CharField(required=False)
    session = serializers.CharField(
        required=False, allow_null=True, help_text='A session id, "new" (a new session per run), or null (deleted).'
    )


class CronJobSerializer(_JSONShape):
    builder = staticmethod(job_json)
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=CronJob.Status.choices)
    statusReason = serializers.CharField(allow_null=True)  # noqa: N815
    enabled = serializers.BooleanField()
    schedule = ScheduleSerializer()
    action = ActionSerializer()
    origin = serializers.ChoiceField(choices=CronJob.Origin.choices)
    nextRunAt = serializers.IntegerField(allow_null=True, help_text="Unix ms")  # noqa: N815
    nextRunAtIso = serializers.DateTimeField(allow_null=True)  # noqa: N815
    lastRunAt = serializers.IntegerField(allow_null=True)  # noqa: N815
    lastRunAtIso = serializers.DateTimeField(allow_null=True)  # noqa: N815
    runCount = serializers.IntegerField()  # noqa: N815
    createdAt = serializers.IntegerField()  # noqa: N815
    createdAtIso = serializers.DateTimeField()  # noqa: N815


class CronRunSerializer(_JSONShape):
    builder = staticmethod(run_json)
    id = serializers.UUIDField()
    jobId = serializers.UUIDField()  # noqa: N815
    jobName = serializers.CharField()  # noqa: N815
    status = serializers.ChoiceField(choices=CronRun.Status.choices)
    trigger = serializers.ChoiceField(choices=CronRun.Trigger.choices)
    scheduledFor = serializers.DateTimeField()  # noqa: N815
    startedAt = serializers.DateTimeField()  # noqa: N815
    finishedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
    latenessMs = serializers.IntegerField(help_text="started_at - scheduled_for")  # noqa: N815
    turnId = serializers.UUIDField(allow_null=True, help_text="The turn an agent prompt started.")  # noqa: N815
    error = serializers.CharField(allow_null=True)


class JobEnvelopeSerializer(serializers.Serializer):
    job = CronJobSerializer()


class RunEnvelopeSerializer(serializers.Serializer):
    run = CronRunSerializer()


class JobWriteSerializer(serializers.Serializer):
    """For the schema only; apps/scheduling/inputs.py reads the body."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    scheduleType = serializers.ChoiceField(choices=ScheduleType.choices)  # noqa: N815
    expression = serializers.CharField(required=False, help_text="cron: 5 fields")
    atTimestamp = serializers.IntegerField(required=False, help_text="once: Unix ms (or an ISO 8601 string)")  # noqa: N815
    intervalMs = serializers.IntegerField(required=False, help_text="interval: a multiple of 1000")  # noqa: N815
    timezone = serializers.CharField(required=False, help_text="IANA name, default UTC")
    eventTopic = serializers.CharField(required=False)  # noqa: N815
    payload = serializers.DictField(required=False)
    agent = serializers.CharField(required=False, help_text="Agent id or name")
    prompt = serializers.CharField(required=False)
    session = serializers.CharField(required=False, help_text='A session id, or "new" (default)')
    enabled = serializers.BooleanField(required=False, help_text="false: created paused")


class TimeAgentSerializer(serializers.Serializer):
    prompt = serializers.CharField(max_length=20000)
    schedule_time = serializers.CharField(help_text="ISO 8601 with an offset (or Unix ms)")
    agent = serializers.CharField(required=False, help_text="Agent id or name; default the first enabled agent")
    session = serializers.CharField(required=False, help_text='A session id, or "new" (default)')
    timezone = serializers.CharField(required=False)


class SchedulerStatusSerializer(serializers.Serializer):
    beatAlive = serializers.BooleanField()  # noqa: N815
    lastTick = serializers.DateTimeField(allow_null=True)  # noqa: N815
    jobsActive = serializers.IntegerField()  # noqa: N815
    jobsTotal = serializers.IntegerField()  # noqa: N815
    nextFire = serializers.DateTimeField(allow_null=True)  # noqa: N815
    maxLoopIntervalSeconds = serializers.FloatField()  # noqa: N815
