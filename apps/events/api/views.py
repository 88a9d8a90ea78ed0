"""SSE views: a tenant's events, or one session's, live with replay (docs/realtime.md)."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation

from apps.core.api.views import TenantAPIView
from apps.core.chat_sessions import session_owned
from apps.core.openapi import ERROR_RESPONSES
from apps.events.selectors import newest_event_id
from apps.events.streaming import event_backlog_response, event_stream_frames, sse_response


class AnyAcceptNegotiation(BaseContentNegotiation):
    """EventSource sends `Accept: text/event-stream`, which no DRF renderer offers: the stream
    itself is not rendered by DRF, and an error before it starts is JSON whatever was asked."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


LAST_EVENT_ID_PARAMS = [
    OpenApiParameter(
        "Last-Event-ID",
        OpenApiTypes.INT,
        location=OpenApiParameter.HEADER,
        description="Resume after this event id (EventSource sends it when it reconnects). Wins over the query.",
    ),
    OpenApiParameter(
        "last_event_id",
        OpenApiTypes.INT,
        description="Resume after this event id on the first connection. Without either: only new events.",
    ),
]

STREAM_DESCRIPTION = (
    "Answers `text/event-stream` and stays open. First every event after `Last-Event-ID` from the "
    "event log, in order, then live ones. Each event is `id: <n>`, `event: <type>`, `data: <envelope JSON>` "
    "with the envelope `{id, type, tenant, session_id, turn_id, ts, data}`; `id:` is the position to "
    "resume from. A `: heartbeat` comment comes after SSE_HEARTBEAT_SECONDS (15) of silence. "
    "Headers: `Cache-Control: no-cache`, `X-Accel-Buffering: no`. A client that stops reading for "
    "STREAM_STALL_SECONDS is disconnected and resumes by id. See docs/realtime.md."
)


class _EventStreamView(TenantAPIView):
    content_negotiation_class = AnyAcceptNegotiation
    # One request opens a long stream: only the connection counts against the rate limit.

    def last_event_id(self, request) -> int | None:
        raw = request.headers.get("Last-Event-ID") or request.query_params.get("last_event_id")
        if raw in (None, ""):
            return None
        if not (raw.isascii() and raw.isdigit() and len(raw) < 20):
            raise ValidationError({"last_event_id": ["A non-negative integer event id."]})
        return int(raw)

    def stream(self, request, *, session_id: str | None, with_status: bool):
        after_id = self.last_event_id(request)
        tenant_id = str(self.tenant.pk)
        if after_id is None:
            after_id = newest_event_id(tenant=tenant_id)  # no id given: from now on
        if not isinstance(request._request, ASGIRequest):
            return event_backlog_response(tenant_id=tenant_id, session_id=session_id, after_id=after_id)
        key, user = self.principal.api_key, self.principal.user
        credentials = (str(key.pk) if key else None, str(user.pk) if getattr(user, "pk", None) else None)
        frames = event_stream_frames(
            tenant_id=tenant_id,
            session_id=session_id,
            after_id=after_id,
            credentials=credentials,
            with_status=with_status,
        )
        return sse_response(frames)


class TenantEventStreamView(_EventStreamView):
    @extend_schema(
        tags=["events"],
        summary="Stream the tenant's events (SSE)",
        description=STREAM_DESCRIPTION + " Also carries `system_status` every SYSTEM_STATUS_SECONDS (no `id:`).",
        parameters=LAST_EVENT_ID_PARAMS,
        responses={
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description="The event stream."),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        return self.stream(request, session_id=None, with_status=True)


class SessionEventStreamView(_EventStreamView):
    id_label = "session"

    @extend_schema(
        tags=["events"],
        summary="Stream one session's events (SSE)",
        description=STREAM_DESCRIPTION,
        parameters=LAST_EVENT_ID_PARAMS,
        responses={
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description="The event stream."),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request, session_id: str):
        session_uuid = self.uuid_or_404(session_id)
        if not session_owned(tenant_id=self.tenant.pk, session_id=session_uuid):
            raise Http404
        return self.stream(request, session_id=str(session_uuid), with_status=False)
