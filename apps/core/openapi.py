"""Shared pieces of the OpenAPI description."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": serializers.CharField(help_text="A short summary, e.g. `Not found`."),
        "message": serializers.CharField(required=False, help_text="What went wrong and what to do."),
        "fields": serializers.DictField(required=False, help_text="Per-field validation messages."),
    },
)

ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid JSON, malformed id, or failed validation (`fields`)."),
    401: OpenApiResponse(ErrorSerializer, description="Missing, invalid, revoked or expired API key."),
    403: OpenApiResponse(ErrorSerializer, description="Your role or key scopes do not allow this."),
    404: OpenApiResponse(ErrorSerializer, description="No such object in your tenant."),
    429: OpenApiResponse(ErrorSerializer, description="Rate limited; see `Retry-After`."),
}

# Each event of a `text/event-stream` response, as Open API 3.0 describes a stream: the schema
# of one item (3.2 would say `itemSchema`). `data` is the event envelope as JSON text.
SSE_EVENT_SCHEMA = {
    "type": "object",
    "description": "One Server-Sent Event: `id:`, `event:` and `data:` lines (or a `retry:` hint).",
    "properties": {
        "id": {"type": "string", "description": "The stream position; send it back as Last-Event-ID."},
        "event": {"type": "string", "description": "The event type, e.g. `chat_token` or `turn_completed`."},
        "data": {"type": "string", "description": "The event envelope as JSON text."},
        "retry": {"type": "integer", "description": "Milliseconds to wait before reconnecting."},
    },
}

_COMMON_DESCRIPTIONS = {
    "400": "Invalid JSON, malformed id, or failed validation (`fields`).",
    "401": "Missing, invalid, revoked or expired API key.",
    "403": "Your role or key scopes do not allow this.",
    "404": "No such object in your tenant.",
    "413": "Request body over MAX_BODY_BYTES.",
    "429": "Rate limited; see `Retry-After`.",
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
# The same shape as ErrorSerializer, for a schema in which no view named it.
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "fields": {"type": "object"}},
    "required": ["error"],
}


def _error_response(code: str) -> dict:
    return {"description": _COMMON_DESCRIPTIONS[code], "content": {"application/json": {"schema": _ERROR_REF}}}


def add_common_responses(result, generator, request, public):  # noqa: ARG001 - drf-spectacular's hook signature
    """Every status the shared machinery can answer is documented on every route it applies to,
    so a view cannot forget one: 401/403/429 wherever authentication runs, 404 (and 400 for a
    malformed id) on routes with path ids, 400 for bodies and query parameters, 413 wherever a
    body is read. SSE responses get the per-event schema."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", _ERROR_SCHEMA)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            codes = set()
            if operation.get("security") and {} not in operation["security"]:
                codes |= {"401", "403", "429"}
            if "{" in path:
                codes |= {"400", "404"}
            if any(p.get("in") == "query" for p in parameters):
                codes.add("400")
            if "requestBody" in operation:
                codes |= {"400", "413"}
            for code in sorted(codes - set(responses)):
                responses[code] = _error_response(code)
            for response in responses.values():
                stream = response.get("content", {}).get("text/event-stream")
                if stream is not None and stream.get("schema", {}).get("type") == "string":
                    stream["schema"] = SSE_EVENT_SCHEMA
    return result
