"""The Schedules page's form, read into the API's body shape so apps/scheduling/inputs.py parses
it (the same parsing and the same reference-style messages as `POST /api/cron/jobs`).

The form speaks in people's units (a local date and time in the job's timezone, an interval in
seconds, a JSON payload in a textarea); this module only translates those into the API's fields.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from apps.scheduling.models import ActionType, CronJob, ScheduleType
from apps.scheduling.schedule import ScheduleError, zone

# The API's field names (what JobInputError.field names) → the form's.
FORM_FIELD = {
    "scheduleType": "schedule_type",
    "atTimestamp": "at",
    "intervalMs": "interval_seconds",
    "eventTopic": "event_topic",
    "schedule": "expression",
}


class FormInputError(ScheduleError):
    """A form value the API body cannot carry (an unreadable number or JSON)."""


def form_field(api_field: str) -> str:
    return FORM_FIELD.get(api_field, api_field)


def _local_at(raw: str, timezone: str) -> str:
    """`2026-12-02T07:00` from a datetime-local input, read in the job's timezone, as ISO 8601
    with its offset (an unknown timezone leaves it as typed: the timezone's error comes first)."""
    try:
        naive = dt.datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if naive.tzinfo is not None:
        return raw
    try:
        return naive.replace(tzinfo=zone(timezone)).isoformat()
    except ScheduleError:
        return raw


def schedule_body(post) -> dict[str, Any]:
    """The schedule part of the API body from the form."""
    kind = post.get("schedule_type", "")
    timezone = post.get("timezone", "").strip() or "UTC"
    body: dict[str, Any] = {"scheduleType": kind, "timezone": timezone}
    if kind == ScheduleType.CRON:
        body["expression"] = post.get("expression", "")
    elif kind == ScheduleType.ONCE:
        raw = post.get("at", "").strip()
        body["atTimestamp"] = _local_at(raw, timezone) if raw else None
    elif kind == ScheduleType.INTERVAL:
        raw = post.get("interval_seconds", "").strip()
        if raw:
            try:
                body["intervalMs"] = int(raw) * 1000
            except ValueError as exc:
                raise FormInputError("Invalid intervalMs: give a whole number of seconds", "interval_seconds") from exc
        else:
            body["intervalMs"] = None
    return body


def action_body(post) -> dict[str, Any]:
    if post.get("action_type") == ActionType.EVENT:
        raw = post.get("payload", "").strip()
        try:
            payload = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            raise FormInputError(f"Invalid payload: not JSON ({exc.msg} at line {exc.lineno})", "payload") from exc
        return {"eventTopic": post.get("event_topic", ""), "payload": payload}
    return {"agent": post.get("agent", ""), "prompt": post.get("prompt", ""), "session": post.get("session") or "new"}


def job_body(post) -> dict[str, Any]:
    """The whole API body (create and edit send every field: the form shows them all)."""
    return {
        "name": post.get("name", ""),
        "description": post.get("description", ""),
        **schedule_body(post),
        **action_body(post),
    }


def job_values(job: CronJob | None) -> dict[str, Any]:
    """The form's values for a job (or a new one)."""
    if job is None:
        return {"schedule_type": ScheduleType.CRON, "action_type": ActionType.AGENT, "timezone": "", "session": "new"}
    at = job.at.astimezone(zone(job.timezone)).strftime("%Y-%m-%dT%H:%M") if job.at else ""
    return {
        "name": job.name,
        "description": job.description,
        "schedule_type": job.schedule_type,
        "expression": job.expression,
        "timezone": job.timezone,
        "at": at,
        "interval_seconds": job.interval_seconds or "",
        "action_type": job.action_type,
        "agent": str(job.agent_id or ""),
        "prompt": job.prompt,
        "session": "new" if job.new_session_per_run else str(job.session_id or ""),
        "event_topic": job.event_topic,
        "payload": json.dumps(job.payload, indent=2) if job.payload else "",
    }
