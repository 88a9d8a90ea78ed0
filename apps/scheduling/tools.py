"""The built-in tools that let an agent schedule its own later work: `schedule_task` (a once or
cron job that prompts this agent later, in this session, for this user), `list_scheduled_tasks`
and `cancel_scheduled_task`. Registered into the tools registry from SchedulingConfig.ready().

Tenant, agent, user and session come from the ToolContext the server fills from the running
turn, never from the arguments: a model cannot schedule for another tenant, agent or session.
schedule_task needs approval by default (`default_action`), as it acts later on the user's behalf."""

from __future__ import annotations

from typing import Any

from apps.conversations.models import ChatSession
from apps.core.ids import parse_uuid
from apps.policy.models import Action
from apps.scheduling.inputs import JobInputError, schedule_fields
from apps.scheduling.models import ActionType, CronJob
from apps.scheduling.schedule import describe
from apps.tools.registry import SideEffect, Tool, ToolContext, ToolError

TOOL_PROMPT_MAX = 4000


def _session(context: ToolContext) -> ChatSession:
    session_id = parse_uuid(context.session_id) if context.session_id else None
    session = ChatSession.objects.filter(tenant=context.tenant, pk=session_id).first() if session_id else None
    if context.tenant is None or context.agent is None or session is None:
        raise ToolError("Scheduling needs a running turn (tenant, agent and session); this call has none.")
    return session


def _schedule_input(arguments: dict[str, Any]) -> dict[str, Any]:
    at, cron = arguments.get("at"), arguments.get("cron")
    if bool(at) == bool(cron):
        raise ToolError("Give exactly one of `at` (ISO 8601, for once) or `cron` (5 fields, to repeat).")
    zone = arguments.get("timezone") or "UTC"
    if cron:
        return {"scheduleType": "cron", "expression": cron, "timezone": zone}
    text = str(at).strip()
    # A time without an offset is read in `timezone` (what a person means by "9 o'clock").
    if "T" in text and not any(sign in text[10:] for sign in ("+", "-", "Z")):
        from datetime import datetime
        from zoneinfo import ZoneInfo

        try:
            local = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))
        except (ValueError, KeyError) as exc:
            raise ToolError(f"`at` must be ISO 8601, e.g. 2026-05-01T09:00:00 (got {text!r}).") from exc
        text = local.isoformat()
    return {"scheduleType": "once", "atTimestamp": text, "timezone": zone}


def _fields(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    session = _session(context)
    prompt = " ".join(str(arguments.get("prompt") or "").split())
    if not prompt:
        raise ToolError("The prompt is empty: say what should happen at that time.")
    try:
        fields = schedule_fields(_schedule_input(arguments))
    except JobInputError as exc:
        raise ToolError(str(exc)) from exc
    name = " ".join(str(arguments.get("name") or "").split())[:200] or f"Reminder: {prompt[:80]}"
    return {
        "name": name,
        "description": f"Scheduled by agent {context.agent.name} in a conversation.",
        "enabled": True,
        **fields,
        "action_type": ActionType.AGENT,
        "agent": context.agent,
        "prompt": prompt[:TOOL_PROMPT_MAX],
        "session": session,
        "new_session_per_run": False,
        "event_topic": "",
        "payload": {},
    }


def _summary(job: CronJob) -> dict[str, Any]:
    return {
        "id": str(job.pk),
        "name": job.name,
        "status": job.status,
        "schedule": describe(
            schedule_type=job.schedule_type,
            expression=job.expression,
            timezone=job.timezone,
            at=job.at,
            interval_seconds=job.interval_seconds,
        ),
        "next_run_at": job.next_run_at.isoformat() if job.next_run_at else None,
        "prompt": job.prompt,
    }


def schedule_task(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    from apps.scheduling.services import cron_job_create

    fields = _fields(context, arguments)
    try:
        job = cron_job_create(tenant=context.tenant, fields=fields, created_by=context.user, origin=CronJob.Origin.TOOL)
    except JobInputError as exc:
        raise ToolError(str(exc)) from exc
    except Exception as exc:  # the tenant's job limit (409 in the API)
        detail = getattr(exc, "detail", None)
        if detail is None:
            raise
        raise ToolError(str(detail)) from exc
    return {"scheduled": True, **_summary(job)}


def schedule_task_dry_run(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    fields = _fields(context, arguments)
    when = describe(
        schedule_type=fields["schedule_type"],
        expression=fields["expression"],
        timezone=fields["timezone"],
        at=fields["at"],
        interval_seconds=fields["interval_seconds"],
    )
    return {
        "changes": [{"action": "create", "object": "cron job", "name": fields["name"], "schedule": when}],
        "diff": f"+ job {fields['name']!r}: {when}, prompt {fields['prompt']!r}",
        "reversible": True,
        "rollback": "cancel_scheduled_task with the job id, or DELETE /api/cron/jobs/{id}",
        "warnings": [],
    }


def _own_jobs(context: ToolContext):
    session = _session(context)
    return CronJob.objects.filter(tenant=context.tenant, agent=context.agent, session=session).order_by("created_at")


def list_scheduled_tasks(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    jobs = _own_jobs(context)
    if not arguments.get("include_finished"):
        jobs = jobs.filter(status__in=(CronJob.Status.ACTIVE, CronJob.Status.PAUSED))
    found = [_summary(job) for job in jobs[:50]]
    return {"count": len(found), "tasks": found}


def cancel_scheduled_task(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    from apps.scheduling.services import cron_job_delete

    job_id = parse_uuid(str(arguments["id"]))
    job = _own_jobs(context).filter(pk=job_id).first() if job_id else None
    if job is None:
        raise ToolError("No such scheduled task in this conversation (list_scheduled_tasks shows them).")
    cron_job_delete(tenant=context.tenant, job=job)
    return {"cancelled": True, "id": str(job.pk), "name": job.name}


schedule_task_tool = Tool(
    name="schedule_task",
    description=(
        "Schedule a prompt for this agent, in this conversation, later: once at a time (`at`, ISO 8601; "
        "without an offset it is read in `timezone`) or repeatedly (`cron`, 5 fields, in `timezone`). "
        "Use it for reminders and follow-ups."
    ),
    parameters={
        "type": "object",
        "properties": {
            "prompt": {"type": "string", "maxLength": TOOL_PROMPT_MAX, "description": "What to do or say then."},
            "at": {"type": "string", "maxLength": 64, "description": "When, once: e.g. 2026-05-01T09:00:00."},
            "cron": {"type": "string", "maxLength": 120, "description": "When, repeating: e.g. '0 9 * * 1-5'."},
            "timezone": {"type": "string", "maxLength": 64, "description": "IANA time zone, default UTC."},
            "name": {"type": "string", "maxLength": 200},
        },
        "required": ["prompt"],
        "additionalProperties": False,
    },
    handler=schedule_task,
    side_effect=SideEffect.WRITE,
    dry_run=schedule_task_dry_run,
    idempotent=False,
    default_action=Action.REQUIRE_APPROVAL,
)

list_scheduled_tasks_tool = Tool(
    name="list_scheduled_tasks",
    description="The tasks scheduled in this conversation for this agent (active and paused).",
    parameters={
        "type": "object",
        "properties": {"include_finished": {"type": "boolean", "description": "Also completed and failed ones."}},
        "additionalProperties": False,
    },
    handler=list_scheduled_tasks,
    side_effect=SideEffect.READ,
)


def cancel_scheduled_task_dry_run(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    job_id = parse_uuid(str(arguments["id"]))
    job = _own_jobs(context).filter(pk=job_id).first() if job_id else None
    if job is None:
        raise ToolError("No such scheduled task in this conversation (list_scheduled_tasks shows them).")
    return {
        "changes": [{"action": "delete", "object": "cron job", "name": job.name}],
        "diff": f"- job {job.name!r} ({job.status}, next run {job.next_run_at})",
        "reversible": False,
        "rollback": "schedule_task again with the same prompt and time",
        "warnings": ["Its run history is deleted with it."],
    }


cancel_scheduled_task_tool = Tool(
    name="cancel_scheduled_task",
    description="Cancel (delete) a task scheduled in this conversation, by the id list_scheduled_tasks shows.",
    parameters={
        "type": "object",
        "properties": {"id": {"type": "string", "maxLength": 64}},
        "required": ["id"],
        "additionalProperties": False,
    },
    handler=cancel_scheduled_task,
    side_effect=SideEffect.WRITE,
    dry_run=cancel_scheduled_task_dry_run,
    idempotent=True,
)

SCHEDULING_TOOLS = (schedule_task_tool, list_scheduled_tasks_tool, cancel_scheduled_task_tool)
