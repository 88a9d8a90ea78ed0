"""Synchronous faces: post a message and wait for the answer. They queue the same turn as
`POST /api/sessions/{id}/messages` and wait for the worker; there is no second model loop.

The waiting views are async (`AsyncTenantAPIView`): under daphne the wait is a coroutine on
the event loop woken by the turn's events (turns/wait.py), holding no database connection,
instead of a request thread sleeping in a poll loop with its connection checked out.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from apps.agents.breaker import breaker_status
from apps.conversations import selectors, services
from apps.conversations.api.serializers import (
    AgentMessageReplySerializer,
    AgentMessageSerializer,
    TaskReplySerializer,
    TaskSerializer,
)
from apps.conversations.api.views import BUDGET_RESPONSE, SessionScopedMixin, budget_exhausted_response
from apps.conversations.models import ChatSession, Message, Turn
from apps.conversations.services import BudgetExhausted
from apps.conversations.turns.wait import db_call, turn_wait
from apps.core.api.views import TenantAPIView
from apps.core.errors import NotConfigured, error_body
from apps.core.ids import parse_uuid
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.events.streaming import sse_response, turn_event_frames
from apps.tenancy.models import Role

SYNC_ERRORS = {
    409: OpenApiResponse(
        ErrorSerializer,
        description="The turn was cancelled before it answered, or a new session would pass `max_sessions`.",
    ),
    422: OpenApiResponse(
        ErrorSerializer,
        description="The tenant's configuration stopped it: no enabled agent (no turn was started), or the "
        "turn failed on it (no usable model, agent disabled; a spent budget is a 402; the id field names the turn).",
    ),
    500: OpenApiResponse(ErrorSerializer, description="The turn failed unexpectedly; the worker logged why."),
    502: OpenApiResponse(
        ErrorSerializer, description="Every model provider tried failed or refused the request; `message` says how."
    ),
    504: OpenApiResponse(ErrorSerializer, description="Still running after SYNC_TURN_TIMEOUT_SECONDS; poll the turn."),
}

# metadata.failure (written by the engine) -> the status and summary the synchronous faces answer.
FAILURE_STATUS = {
    "configuration": (422, "Turn failed: configuration"),
    "upstream": (502, "Turn failed: model provider"),
}


def turn_metadata(turn: Turn) -> dict:
    output = turn.output_message.metadata if turn.output_message else {}
    return {
        "stepCount": turn.step_count,
        "toolCallCount": turn.tool_call_count,
        "durationMs": turn.duration_ms,
        "model": turn.model,
        "offline": bool(output.get("offline")),
        "usage": turn.usage,
        "costUsd": str(turn.cost_usd),
        "status": turn.status,
    }


class AsyncTenantAPIView(TenantAPIView):
    """A TenantAPIView whose handlers are coroutines.

    DRF's APIView is synchronous. This one keeps all of DRF's request handling (authentication
    with the auth-failure limit, permissions and roles, path-id checks, parsers and the body
    cap, the JSON error handler, renderers) by running those same synchronous steps through
    `db_call`: in the request's thread, its connection released afterwards. Handlers await
    their own synchronous parts the same way. The middleware (rate limits, request id) is
    untouched: Django runs it around any view. `options` is async here, so a subclass with a
    synchronous handler is refused by Django ("all sync or all async") when its URL is loaded.
    """

    async def dispatch(self, request, *args, **kwargs):
        # DRF's APIView.dispatch, with the blocking steps off the event loop.
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            await db_call(self.initial)(request, *args, **kwargs)
            allowed = request.method.lower() in self.http_method_names
            handler = getattr(self, request.method.lower(), None) if allowed else None
            if handler is None:
                handler = self.http_method_not_allowed
            response = handler(request, *args, **kwargs)
            if not isinstance(response, HttpResponseBase):
                response = await response
        except Exception as exc:  # noqa: BLE001 - DRF's handler answers it or raises it again
            response = await db_call(self.handle_exception)(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    async def options(self, request, *args, **kwargs):
        return await db_call(super().options)(request, *args, **kwargs)


class SyncTurnMixin(SessionScopedMixin):
    rate_limit_scope = "chat"
    required_roles = {"POST": Role.MEMBER, "GET": Role.VIEWER}

    def start_turn(
        self,
        *,
        text: str,
        session_id: str | None,
        agent_name: str | None,
        mode: str,
        multitask: str = "enqueue",
        extra_parts: list[dict] | None = None,
    ) -> Turn:
        if session_id:
            session = self.continued_session(session_id, agent_name)
        else:
            agent = selectors.agent_resolve(tenant=self.tenant, name_or_id=agent_name)
            if agent is None and agent_name:
                raise ValidationError({"agent": ["No such agent."]})
            if agent is None:
                raise NotConfigured("This tenant has no enabled agent; create or enable one, or name one in `agent`.")
            session = services.session_create(
                tenant=self.tenant, agent=agent, created_by=self.principal.user, title=text[:80], mode=mode
            )
        _, turn = services.message_post(
            tenant=self.tenant,
            session=session,
            role=Message.Role.USER,
            parts=[{"type": "text", "text": text}, *(extra_parts or [])],
            author=self.principal.user,
            api_key=self.principal.api_key,
            multitask=multitask,
        )
        return turn

    def continued_session(self, session_id: str, agent_name: str | None) -> ChatSession:
        """The caller's session to continue; another tenant's (or no) session is a 404."""
        parsed = parse_uuid(session_id)
        session = selectors.session_get(tenant=self.tenant, session_id=parsed) if parsed else None
        if session is None:
            raise NotFound("No such session in your tenant; leave the session out to start a new one.")
        if agent_name:
            agent = selectors.agent_resolve(tenant=self.tenant, name_or_id=agent_name)
            if agent is None or agent.pk != session.agent_id:
                # Answering with another agent than the one asked for would be a silent surprise.
                raise ValidationError({"agent": ["Not this session's agent; leave `agent` out to continue it."]})
        return session

    def start_message_turn(self, request) -> Turn | HttpResponseBase:
        """The shared input of /api/agent/message and its stream: a turn, or the refusal."""
        payload = AgentMessageSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            return self.start_turn(
                text=data["text"],
                session_id=data["session_id"],
                agent_name=data.get("agent"),
                mode=ChatSession.Mode.CHAT,
                multitask=data["multitask"],
                extra_parts=data.get("parts"),
            )
        except BudgetExhausted as exc:
            return budget_exhausted_response(exc)

    async def wait(self, turn: Turn) -> Turn:
        return await turn_wait(tenant=self.tenant, turn_id=turn.pk, timeout=settings.SYNC_TURN_TIMEOUT_SECONDS)

    def unfinished_response(self, turn: Turn, id_field: str) -> Response | None:
        ids = {id_field: str(turn.pk), "sessionId": str(turn.session_id)}
        if turn.status == Turn.Status.COMPLETED:
            return None
        if turn.status == Turn.Status.FAILED and (turn.metadata or {}).get("budget_exhausted"):
            # A budget ran out between the POST's check and a model call: the same 402 as up front.
            body = error_body("Budget exhausted", turn.error, budget=turn.metadata["budget_exhausted"], **ids)
            return Response(body, status=402)
        if turn.status == Turn.Status.FAILED:
            code, summary = FAILURE_STATUS.get((turn.metadata or {}).get("failure"), (500, "Turn failed"))
            return Response(error_body(summary, turn.error, **ids), status=code)
        if turn.status == Turn.Status.CANCELLED:
            return Response(
                error_body("Turn cancelled", "The turn was cancelled before it answered.", **ids), status=409
            )
        if turn.status == Turn.Status.WAITING_APPROVAL:
            return Response({"status": turn.status, "message": "A tool call waits for approval.", **ids}, status=202)
        return Response(
            error_body("Timeout", f"The turn is still {turn.status}; follow it at /api/turns/{turn.pk}.", **ids),
            status=504,
        )


class AgentMessageView(SyncTurnMixin, AsyncTenantAPIView):
    @extend_schema(
        tags=["agent"],
        summary="Send a message and wait for the answer",
        description=(
            "Continues `sessionId` or starts a session with `agent` (name or id; default the first enabled "
            "agent), then waits up to SYNC_TURN_TIMEOUT_SECONDS for the turn. 202 when a tool call waits for approval."
        ),
        request=AgentMessageSerializer,
        responses={200: AgentMessageReplySerializer, **SYNC_ERRORS, **BUDGET_RESPONSE, **ERROR_RESPONSES},
    )
    async def post(self, request):
        turn = await db_call(self.start_message_turn)(request)
        if isinstance(turn, HttpResponseBase):
            return turn
        turn = await self.wait(turn)
        unfinished = self.unfinished_response(turn, "turnId")
        if unfinished is not None:
            return unfinished
        return Response(
            {
                "text": turn.output_message.text,
                "sessionId": str(turn.session_id),
                "turnId": str(turn.pk),
                "metadata": turn_metadata(turn),
            }
        )


class AgentMessageStreamView(SyncTurnMixin, AsyncTenantAPIView):
    @extend_schema(
        tags=["agent"],
        summary="Send a message and stream the turn's events (SSE)",
        description=(
            "Same input as `/api/agent/message`. Answers `text/event-stream`: each event is "
            "`id: <n>`, `event: <type>`, `data: <envelope JSON>` — turn_started, decision, chat_token "
            "(`data.delta`), tool_call, tool_result, then chat_complete, turn_failed or turn_cancelled."
        ),
        request=AgentMessageSerializer,
        responses={(200, "text/event-stream"): OpenApiTypes.STR, **BUDGET_RESPONSE, **ERROR_RESPONSES},
    )
    async def post(self, request):
        turn = await db_call(self.start_message_turn)(request)
        if isinstance(turn, HttpResponseBase):
            return turn
        frames = turn_event_frames(tenant=self.tenant, turn_id=turn.pk, timeout=settings.SYNC_TURN_TIMEOUT_SECONDS)
        return sse_response(frames)


class AgentStatusView(TenantAPIView):
    @extend_schema(
        tags=["agent"],
        summary="Agents, active turns and provider breakers of this tenant",
        responses={
            200: inline_serializer(
                "AgentStatus",
                {
                    "agents": serializers.ListField(child=serializers.DictField()),
                    "activeTurns": serializers.IntegerField(),
                    "breakers": serializers.ListField(child=serializers.DictField()),
                },
            ),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        from apps.agents.models import Agent

        agents = [
            {"name": a.name, "enabled": a.enabled, "guide_model": a.guide_model.ref if a.guide_model else None}
            for a in Agent.objects.filter(tenant=self.tenant).select_related("guide_model__provider")
        ]
        return Response(
            {
                "agents": agents,
                "activeTurns": selectors.active_turn_count(tenant=self.tenant),
                "breakers": breaker_status(tenant=self.tenant),
            }
        )


class TaskView(SyncTurnMixin, AsyncTenantAPIView):
    @extend_schema(
        tags=["agent"],
        summary="Run a one-off task and wait for its result",
        description="Starts a `task` session with `agent` (default: the first enabled agent) on `topic` and waits. "
        'A failed turn answers `{"error", "message", "taskId", "sessionId"}` with 422 (configuration), '
        "502 (model provider) or 500 (unexpected).",
        request=TaskSerializer,
        responses={200: TaskReplySerializer, **SYNC_ERRORS, **BUDGET_RESPONSE, **ERROR_RESPONSES},
    )
    async def post(self, request):
        turn = await db_call(self.start_task_turn)(request)
        if isinstance(turn, HttpResponseBase):
            return turn
        turn = await self.wait(turn)
        unfinished = self.unfinished_response(turn, "taskId")
        if unfinished is not None:
            return unfinished
        return Response({"taskId": str(turn.pk), "text": turn.output_message.text, "metadata": turn_metadata(turn)})

    def start_task_turn(self, request) -> Turn | HttpResponseBase:
        payload = TaskSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            return self.start_turn(
                text=payload.validated_data["topic"],
                session_id=None,
                agent_name=payload.validated_data.get("agent"),
                mode=ChatSession.Mode.TASK,
            )
        except BudgetExhausted as exc:
            return budget_exhausted_response(exc)
