"""`http_get`: fetch a public web page or API response through the SSRF-safe client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings

# The module, not the class: http_client imports the registry, which imports this module while
# registering the built-ins, so SafeHttpClient may not exist yet when this line runs.
from apps.tools import http_client
from apps.tools.registry import SideEffect, Tool, ToolContext

URL_MAX_CHARS = 2048
# Bodies the model can read; anything else is described rather than decoded into noise.
_TEXTUAL_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")


def _is_textual(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return not media_type or any(marker in media_type for marker in _TEXTUAL_TYPES)


def _fit(result: dict[str, Any]) -> dict[str, Any]:
    """Shorten the text so the whole result fits the tool output limit as valid JSON; otherwise
    execute_tool would cut the JSON itself, mid-string."""
    limit = settings.TOOL_OUTPUT_MAX_CHARS
    overshoot = len(json.dumps(result, ensure_ascii=False)) - limit
    while overshoot > 0 and result["text"]:
        # Each character cut shortens the JSON by at least one, so this ends in a pass or two.
        result = {**result, "text": result["text"][: max(0, len(result["text"]) - overshoot)], "truncated": True}
        overshoot = len(json.dumps(result, ensure_ascii=False)) - limit
    return result


def build_http_get_tool(client_factory: Callable[[], http_client.SafeHttpClient] | None = None) -> Tool:
    """The tool, with the client it uses injectable: tests pass one allowed to reach loopback."""

    def http_get(_context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        limit = settings.HTTP_TOOL_MAX_BYTES
        max_bytes = min(arguments.get("max_bytes") or limit, limit)
        client = client_factory() if client_factory else http_client.SafeHttpClient()
        response = client.get(arguments["url"], max_bytes=max_bytes)
        if _is_textual(response.content_type):
            text = response.text
        else:
            text = f"[{len(response.content)} bytes of {response.content_type} not shown]"
        return _fit(
            {
                "url": response.url,
                "status": response.status,
                "content_type": response.content_type,
                "text": text,
                "truncated": response.truncated,
            }
        )

    return Tool(
        name="http_get",
        description=(
            "Fetch a public http(s) URL with GET and return the status, content type and body text "
            "(cut at max_bytes). Private and internal addresses are refused."
        ),
        parameters={
            "type": "object",
            "properties": {
                "url": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": URL_MAX_CHARS,
                    "description": "http or https URL.",
                },
                "max_bytes": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Read at most this many bytes of the body (the server limit applies too).",
                },
            },
            "required": ["url"],
            "additionalProperties": False,
        },
        handler=http_get,
        side_effect=SideEffect.EXTERNAL,
        idempotent=True,  # a GET: fetching again after a worker died changes nothing
    )


http_get_tool = build_http_get_tool()
