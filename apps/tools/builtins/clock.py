"""`current_time`: what time it is, in UTC and in a named zone. Models have no clock of their own."""

from __future__ import annotations

from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

from apps.tools.registry import SideEffect, Tool, ToolContext, ToolError


def current_time(_context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    name = arguments.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        # ValueError: keys that are not zone names at all ("../etc", absolute paths).
        raise ToolError(f"Unknown time zone '{name}'. Use an IANA name such as 'Europe/Paris'.") from exc
    now = timezone.now().astimezone(UTC)
    local = now.astimezone(zone)
    return {
        "utc": now.isoformat(),
        "timezone": name,
        "local": local.isoformat(),
        "weekday": local.strftime("%A"),
        "unix": int(now.timestamp()),
    }


current_time_tool = Tool(
    name="current_time",
    description="The current date and time in UTC and in a time zone (IANA name, default UTC).",
    parameters={
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "maxLength": 64,
                "description": "IANA time zone name, e.g. 'Europe/Paris' or 'America/New_York'.",
            }
        },
        "additionalProperties": False,
    },
    handler=current_time,
    side_effect=SideEffect.READ,
)
