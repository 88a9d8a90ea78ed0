from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.conversations import selectors, services
from apps.conversations.api.serializers import (
    FeedbackSerializer,
    FeedbackWriteSerializer,
    MessageAcceptedSerializer,
    MessagePostSerializer,
    MessageSerializer,
    SessionSerializer,
    SessionWriteSerializer,
    ToolCallSerializer,
    TurnSerializer,
)
from apps.conversations.services import BudgetExhausted
from apps.core.api.views import TenantAPIView, TenantViewSet
from apps.core.errors import json_error
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.core.pagination import DefaultPagination
from apps.core.params import idempotency_key
from apps.tenancy.models import Role

BUDGET_RESPONSE = {402: OpenApiResponse(ErrorSerializer, description="The tenant's monthly budget is spent.")}


def budget_exhausted_response(exc: BudgetExhausted):
    return json_error(402, "Budget exceeded", str(exc))


class SessionScopedMixin:
    """Resolves `{session_id}` in the path to one of the caller's tenant's sessions, or 404."""

    id_label = "session"

    def get_session(self, session_id: str):
        session = selectors.session_get(tenant=self.tenant, session_id=self.uuid_or_404(session_id))
        if session is None:
            raise Http404
        return session

    def get_turn(self, turn_id: str):
        turn = selectors.turn_get(tenant=self.tenant, turn_id=self.uuid_or_404(turn_id))
        if turn is None:
            raise Http404
        return turn


@extend_schema_view(
    list=extend_schema(
        summary="List sessions, most recent first",
        parameters=[OpenApiParameter("archived", OpenApiTypes.BOOL, description="Include archived (default true).")],
        responses={200: SessionSerializer(many=True), **ERROR_RESPONSES},
    ),
    retrieve=extend_schema(summary="One session", responses={200: SessionSerializer, **ERROR_RESPONSES}),
    create=extend_schema(
        summary="Start a session with an agent",
        request=SessionWriteSerializer,
        responses={201: SessionSerializer, **ERROR_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Rename, archive, change mode or agent",
        request=SessionWriteSerializer,
        responses={200: SessionSerializer, **ERROR_RESPONSES},
    ),
    destroy=extend_schema(
        summary="Delete a session with its messages and turns (an active turn is cancelled)",
        responses={204: None, **ERROR_RESPONSES},
    ),
)
@extend_schema(tags=["sessions"])
class SessionViewSet(SessionScopedMixin, TenantViewSet):
    serializer_class = SessionSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    required_roles = {"GET": Role.VIEWER, "POST": Role.MEMBER, "PATCH": Role.MEMBER, "DELETE": Role.MEMBER}

    def get_queryset(self):
        include_archived = self.request.query_params.get("archived", "true").lower() != "false"
        return selectors.session_list(tenant=self.tenant, include_archived=include_archived)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SessionSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(SessionSerializer(self.get_object()).data)

    def _agent(self, data):
        agent = selectors.agent_resolve(tenant=self.tenant, name_or_id=data.get("agent"))
        if agent is None:
            message = "No such agent." if data.get("agent") else "This tenant has no enabled agent; create one first."
            raise ValidationError({"agent": [message]})
        return agent

    def create(self, request):
        payload = SessionWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        session = services.session_create(
            tenant=self.tenant,
            agent=self._agent(data),
            created_by=self.principal.user,
            title=data.get("title", ""),
            nickname=data.get("nickname", ""),
            mode=data.get("mode", "chat"),
            metadata=data.get("metadata"),
        )
        return Response(SessionSerializer(session).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        session = self.get_object()
        payload = SessionWriteSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        if "agent" in changes:
            changes["agent"] = self._agent(changes)
        session = services.session_update(tenant=self.tenant, session=session, **changes)
        return Response(SessionSerializer(session).data)

    def destroy(self, request, pk=None):
        services.session_delete(tenant=self.tenant, session=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Cancel the session's active turn",
        description="A queued turn ends at once; a running one stops at its next token or step (within a "
        "second), keeping its partial output. Answers the turn, or 404 when nothing is active.",
        request=None,
        responses={200: TurnSerializer, **ERROR_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        turn = services.turn_cancel(tenant=self.tenant, session=self.get_object())
        if turn is None:
            return json_error(404, "Not found", "This session has no active turn.")
        return Response(TurnSerializer(turn).data)

    @extend_schema(
        summary="The session's turns, oldest first", responses={200: TurnSerializer(many=True), **ERROR_RESPONSES}
    )
    @action(detail=True, methods=["get"])
    def turns(self, request, pk=None):
        turns = selectors.turn_list(tenant=self.tenant, session=self.get_object())
        page = self.paginate_queryset(turns)
        return self.get_paginated_response(TurnSerializer(page, many=True).data)

    @extend_schema(
        summary="Feedback on the session's turns", responses={200: FeedbackSerializer(many=True), **ERROR_RESPONSES}
    )
    @action(detail=True, methods=["get"])
    def feedback(self, request, pk=None):
        feedback = selectors.feedback_list(tenant=self.tenant, session=self.get_object())
        page = self.paginate_queryset(feedback)
        return self.get_paginated_response(FeedbackSerializer(page, many=True).data)


class SessionMessagesView(SessionScopedMixin, TenantAPIView):
    pagination_class = DefaultPagination  # also tells the schema the list is paginated
    rate_limit_scope = "chat"

    @extend_schema(
        tags=["sessions"],
        summary="The session's history, oldest first (paginated)",
        parameters=[OpenApiParameter("limit", OpenApiTypes.INT), OpenApiParameter("offset", OpenApiTypes.INT)],
        responses={200: MessageSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, session_id):
        messages = selectors.message_list(tenant=self.tenant, session=self.get_session(session_id))
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(messages, request, view=self)
        return paginator.get_paginated_response(MessageSerializer(page, many=True).data)

    @extend_schema(
        tags=["sessions"],
        summary="Post a message; a turn answers it on a worker",
        description=(
            "Stores the message and, for a user message with `auto_run` (default), queues a turn: "
            "202 `{message_id, turn_id}`. Follow the turn on `/ws`, `GET /api/turns/{id}`, or its events. "
            "Secrets in text (API keys, tokens, private keys, passwords in URLs) are redacted before "
            "they are stored or sent to a model. Chat routes have their own rate limit (CHAT_RATE_LIMIT)."
        ),
        request=MessagePostSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                description="Up to 128 visible ASCII characters. A retry with the same key in this session "
                "answers the first post's `message_id` and `turn_id` and queues nothing new.",
            )
        ],
        responses={202: MessageAcceptedSerializer, **BUDGET_RESPONSE, **ERROR_RESPONSES},
    )
    def post(self, request, session_id):
        session = self.get_session(session_id)
        payload = MessagePostSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            message, turn = services.message_post(
                tenant=self.tenant,
                session=session,
                role=data["role"],
                parts=data["parts"],
                author=self.principal.user,
                auto_run=data["auto_run"],
                idempotency_key=idempotency_key(request.headers),
            )
        except BudgetExhausted as exc:
            return budget_exhausted_response(exc)
        body = {"message_id": str(message.pk), "turn_id": str(turn.pk) if turn else None}
        return Response(body, status=status.HTTP_202_ACCEPTED)


class SessionTurnRetryView(SessionScopedMixin, TenantAPIView):
    rate_limit_scope = "chat"

    @extend_schema(
        tags=["sessions"],
        summary="Run a finished turn again from the same input (a new turn)",
        request=None,
        responses={202: TurnSerializer, **BUDGET_RESPONSE, **ERROR_RESPONSES},
    )
    def post(self, request, session_id, turn_id):
        session = self.get_session(session_id)
        turn = self.get_turn(turn_id)
        if turn.session_id != session.pk:
            raise Http404
        try:
            new = services.turn_retry(tenant=self.tenant, turn=turn)
        except BudgetExhausted as exc:
            return budget_exhausted_response(exc)
        return Response(TurnSerializer(new).data, status=status.HTTP_202_ACCEPTED)


class TurnDetailView(SessionScopedMixin, TenantAPIView):
    id_label = "turn"

    @extend_schema(
        tags=["turns"],
        summary="One turn: status, model, usage, cost, timings",
        responses={200: TurnSerializer, **ERROR_RESPONSES},
    )
    def get(self, request, turn_id):
        return Response(TurnSerializer(self.get_turn(turn_id)).data)


class TurnContextView(SessionScopedMixin, TenantAPIView):
    id_label = "turn"

    @extend_schema(
        tags=["turns"],
        summary="What the turn sent to the model",
        description="System prompt, history window, retrieved items, tools offered and the input.",
        responses={200: OpenApiTypes.OBJECT, **ERROR_RESPONSES},
    )
    def get(self, request, turn_id):
        turn = self.get_turn(turn_id)
        return Response({"turn_id": str(turn.pk), "context": turn.context_snapshot})


class TurnToolsView(SessionScopedMixin, TenantAPIView):
    id_label = "turn"

    @extend_schema(
        tags=["turns"],
        summary="The turn's tool calls with arguments, results and policy decisions",
        responses={200: ToolCallSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, turn_id):
        calls = selectors.tool_call_list(tenant=self.tenant, turn=self.get_turn(turn_id))
        return Response(ToolCallSerializer(calls, many=True).data)


class TurnModelSelectionView(SessionScopedMixin, TenantAPIView):
    id_label = "turn"

    @extend_schema(
        tags=["turns"],
        summary="Which model the router chose and why",
        description="`{candidates, chosen, reason, complexity_score}`, plus the model that finally answered.",
        responses={200: OpenApiTypes.OBJECT, **ERROR_RESPONSES},
    )
    def get(self, request, turn_id):
        turn = self.get_turn(turn_id)
        return Response({"turn_id": str(turn.pk), "answered_by": turn.model, **turn.model_selection})


class TurnFeedbackView(SessionScopedMixin, TenantAPIView):
    id_label = "turn"
    required_roles = {"GET": Role.VIEWER, "POST": Role.MEMBER, "PUT": Role.MEMBER}

    @extend_schema(
        tags=["turns"],
        summary="Feedback on this turn",
        responses={200: FeedbackSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, turn_id):
        feedback = selectors.feedback_list(tenant=self.tenant, turn=self.get_turn(turn_id))
        return Response(FeedbackSerializer(feedback, many=True).data)

    @extend_schema(
        tags=["turns"],
        summary="Grade the turn 1-5 (one grade per person; posting again replaces it)",
        request=FeedbackWriteSerializer,
        responses={201: FeedbackSerializer, 200: FeedbackSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, turn_id):
        return self._upsert(request, turn_id)

    @extend_schema(
        tags=["turns"],
        summary="Change your grade",
        request=FeedbackWriteSerializer,
        responses={200: FeedbackSerializer, **ERROR_RESPONSES},
    )
    def put(self, request, turn_id):
        return self._upsert(request, turn_id)

    def _upsert(self, request, turn_id):
        turn = self.get_turn(turn_id)
        payload = FeedbackWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        feedback, created = services.feedback_upsert(
            tenant=self.tenant,
            turn=turn,
            user=self.principal.user,
            grade=payload.validated_data["grade"],
            comment=payload.validated_data.get("comment", ""),
        )
        return Response(FeedbackSerializer(feedback).data, status=201 if created else 200)
