"""Reading a job from what a caller sent (the API's camelCase body, the schedule_task tool, the
time agent) into model fields, with the errors the reference servers' users script against:
`{"error": "Missing or invalid field: name"}`, `{"error": "Cron schedule requires an expression
field"}`, and an invalid expression or timezone named in the error."""

from __future__ import annotations

import datetime as dt
from typing import Any

from apps.agents.selectors import agent_resolve
from apps.conversations.models import ChatSession
from apps.core.ids import parse_uuid
from apps.scheduling.models import ActionType, ScheduleType
from apps.scheduling.schedule import ScheduleError, validate_cron, zone

NAME_MAX = 200
PROMPT_MAX = 20_000
TOPIC_MAX = 200
SCHEDULE_KEYS = ("scheduleType", "expression", "atTimestamp", "intervalMs", "timezone")
ACTION_KEYS = ("eventTopic", "payload", "agent", "prompt", "session")


class JobInputError(ScheduleError):
    """Bad input for a job: answered 400 with `error` = the message and `fields` naming the field."""


def _missing(field: str) -> JobInputError:
    return JobInputError(f"Missing or invalid field: {field}", field)


def _text(data: dict, key: str, *, max_length: int, required: bool) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise _missing(key)
    return value.strip()


def timestamp_from(value: Any, field: str = "atTimestamp") -> dt.datetime:
    """Unix milliseconds (the reference API) or an ISO 8601 string with an offset."""
    if isinstance(value, bool):
        raise _missing(field)
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise _missing(field) from exc
    if isinstance(value, str) and value.strip():
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise JobInputError(f"Invalid {field}: {value!r} is not Unix milliseconds or ISO 8601", field) from exc
        if parsed.tzinfo is None:
            raise JobInputError(f"Invalid {field}: {value!r} needs a UTC offset (e.g. 'Z' or '+02:00')", field)
        return parsed.astimezone(dt.UTC)
    raise _missing(field)


def schedule_fields(data: dict, *, current: dict | None = None) -> dict[str, Any]:
    """`scheduleType` and its fields → expression / timezone / at / interval_seconds.

    `current`: the job's present schedule (PATCH), filled in where `data` is silent."""
    current = current or {}
    kind = data.get("scheduleType", current.get("schedule_type"))
    if kind not in ScheduleType.values:
        raise _missing("scheduleType")
    timezone = data.get("timezone") or current.get("timezone") or "UTC"
    try:
        zone(timezone)
    except ScheduleError as exc:
        raise JobInputError(str(exc), "timezone") from exc
    fields: dict[str, Any] = {
        "schedule_type": kind,
        "timezone": timezone,
        "expression": "",
        "at": None,
        "interval_seconds": None,
    }
    if kind == ScheduleType.CRON:
        expression = data.get("expression", current.get("expression") if current.get("schedule_type") == kind else None)
        if not isinstance(expression, str) or not expression.strip():
            raise JobInputError("Cron schedule requires an expression field", "expression")
        expression = " ".join(expression.split())
        try:
            validate_cron(expression, timezone)
        except ScheduleError as exc:
            raise JobInputError(str(exc), exc.field) from exc
        fields["expression"] = expression
    elif kind == ScheduleType.ONCE:
        raw = data.get("atTimestamp")
        if raw is None and current.get("schedule_type") == kind:
            fields["at"] = current.get("at")
        elif raw is None:
            raise JobInputError("Once schedule requires an atTimestamp field", "atTimestamp")
        else:
            fields["at"] = timestamp_from(raw)
    else:
        raw = data.get("intervalMs")
        if raw is None and current.get("schedule_type") == kind:
            fields["interval_seconds"] = current.get("interval_seconds")
        elif raw is None:
            raise JobInputError("Interval schedule requires an intervalMs field", "intervalMs")
        else:
            if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
                raise _missing("intervalMs")
            if raw % 1000:
                raise JobInputError(
                    "Invalid intervalMs: must be a whole number of seconds (a multiple of 1000)", "intervalMs"
                )
            fields["interval_seconds"] = raw // 1000
    return fields


def action_fields(tenant, data: dict) -> dict[str, Any]:
    """`eventTopic`+`payload` or `agent`+`prompt` (+`session`: an id, or "new" for a new session
    per run, the default)."""
    has_event = data.get("eventTopic") is not None
    has_agent = data.get("agent") is not None or data.get("prompt") is not None
    if has_event and has_agent:
        raise JobInputError("Give either eventTopic (+payload) or agent+prompt, not both", "eventTopic")
    if not has_event and not has_agent:
        raise JobInputError("Missing or invalid field: eventTopic (or agent and prompt)", "eventTopic")
    if has_event:
        topic = _text(data, "eventTopic", max_length=TOPIC_MAX, required=True)
        payload = data.get("payload")
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise _missing("payload")
        return {
            "action_type": ActionType.EVENT,
            "event_topic": topic,
            "payload": payload,
            "agent": None,
            "prompt": "",
            "session": None,
            "new_session_per_run": True,
        }
    agent_ref = _text(data, "agent", max_length=200, required=True)
    agent = agent_resolve(tenant=tenant, name_or_id=agent_ref)
    if agent is None:
        raise JobInputError(f"Unknown agent: {agent_ref!r} is not an agent of this tenant (by id or name)", "agent")
    prompt = _text(data, "prompt", max_length=PROMPT_MAX, required=True)
    session_ref = data.get("session")
    session = None
    if session_ref not in (None, "", "new"):
        session_id = parse_uuid(session_ref) if isinstance(session_ref, str) else None
        session = ChatSession.objects.filter(tenant=tenant, pk=session_id).first() if session_id else None
        if session is None:
            raise JobInputError(f'Unknown session: {session_ref!r} (a session id of this tenant, or "new")', "session")
        if session.agent_id != agent.pk:
            # The session's agent is the one that answers; a job naming another would mislead.
            raise JobInputError(f"Invalid session: {session_ref!r} is a conversation with another agent", "session")
    return {
        "action_type": ActionType.AGENT,
        "agent": agent,
        "prompt": prompt,
        "session": session,
        "new_session_per_run": session is None,
        "event_topic": "",
        "payload": {},
    }


def job_fields(tenant, data: Any) -> dict[str, Any]:
    """Every field of a new job from a POST body."""
    if not isinstance(data, dict):
        raise JobInputError("Missing or invalid field: name (send a JSON object)", "name")
    fields = {"name": _text(data, "name", max_length=NAME_MAX, required=True)}
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _missing("description")
    fields["description"] = description
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _missing("enabled")
    fields["enabled"] = enabled
    fields.update(schedule_fields(data))
    fields.update(action_fields(tenant, data))
    return fields


def job_changes(tenant, job, data: Any) -> dict[str, Any]:
    """The fields a PATCH changes; schedule and action are re-read whole when any of theirs is sent."""
    if not isinstance(data, dict):
        raise JobInputError("Missing or invalid field: name (send a JSON object)", "name")
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = _text(data, "name", max_length=NAME_MAX, required=True)
    if "description" in data:
        if not isinstance(data["description"], str):
            raise _missing("description")
        changes["description"] = data["description"]
    current = {
        "schedule_type": job.schedule_type,
        "expression": job.expression,
        "timezone": job.timezone,
        "at": job.at,
        "interval_seconds": job.interval_seconds,
    }
    if any(key in data for key in SCHEDULE_KEYS):
        changes.update(schedule_fields(data, current=current))
    if any(key in data for key in ACTION_KEYS):
        # What the PATCH leaves out of the action stays as it was, unless it switches kind.
        if job.action_type == ActionType.EVENT and data.get("agent") is None and data.get("prompt") is None:
            merged = {"eventTopic": job.event_topic, "payload": job.payload, **data}
        elif job.action_type == ActionType.AGENT and data.get("eventTopic") is None:
            merged = {"agent": str(job.agent_id or ""), "prompt": job.prompt, **current_session(job), **data}
        else:
            merged = data
        changes.update(action_fields(tenant, merged))
    unknown = sorted(set(data) - {"name", "description", *SCHEDULE_KEYS, *ACTION_KEYS})
    if unknown:
        raise JobInputError(f"Unknown field: {unknown[0]} (pause and resume have their own routes)", unknown[0])
    return changes


def current_session(job) -> dict[str, str]:
    return {"session": str(job.session_id) if job.session_id else "new"}
