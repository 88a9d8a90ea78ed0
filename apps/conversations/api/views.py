from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
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
    SessionDetailSerializer,
    SessionSerializer,
    SessionWriteSerializer,
    ToolCallSerializer,
    TurnCancellingSerializer,
    TurnSerializer,
)
from apps.conversations.budgets import BUDGET_SCOPES
from apps.conversations.services import BudgetExhausted
from apps.core.api.views import TenantAPIView, TenantViewSet
from apps.core.errors import json_error
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.core.pagination import DefaultPagination
from apps.core.params import idempotency_key
from apps.tenancy.models import Role

BudgetErrorSerializer = inline_serializer(
    "BudgetError",
    fields={
        "error": serializers.CharField(help_text='"Budget exhausted"'),
        "message": serializers.CharField(help_text="Which budget, how much is spent, how to raise it."),
        "budget": serializers.ChoiceField(choices=BUDGET_SCOPES),
    },
)
BUDGET_RESPONSE = {
    402: OpenApiResponse(
        BudgetErrorSerializer,
        description="A budget is spent: `budget` names it (tenant_monthly, api_key_monthly, agent_turn, "
        "platform_provider_monthly), `message` says how much and how to raise it.",
    )
}
SESSION_LIMIT_RESPONSE = {
    409: OpenApiResponse(ErrorSerializer, description="The tenant's `max_sessions` limit is reached.")
}


def budget_exhausted_response(exc: BudgetExhausted):
    return json_error(402, "Budget exhausted", str(exc), budget=exc.scope)


def paginated(view, request, queryset, serializer_class) -> Response:
    """One list shape for the whole API: `{count, next, previous, results}` (`?limit=&offset=`)."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


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
    retrieve=extend_schema(
        summary="One session, with the sessions forked from it",
        responses={200: SessionDetailSerializer, **ERROR_RESPONSES},
    ),
    create=extend_schema(
        summary="Start a session with an agent",
        request=SessionWriteSerializer,
        responses={201: SessionSerializer, **SESSION_LIMIT_RESPONSE, **ERROR_RESPONSES},
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
        return Response(SessionDetailSerializer(self.get_object()).data)

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
        description=(
            "A queued turn, or one waiting for approval, ends at once: **200** with the turn in its final "
            "status (`cancelled`, or `completed`/`failed` when it finished before the cancel arrived). A "
            "running turn stops at its next token or step (within a second), keeping its partial output: "
            '**202** with `"status": "cancelling"`; its final status then comes as the `turn_cancelled` event '
            "and on `GET /api/turns/{id}`. 404 when the session has no active turn."
        ),
        request=None,
        responses={
            200: OpenApiResponse(TurnSerializer, description="The turn has ended; `status` is final."),
            202: OpenApiResponse(TurnCancellingSerializer, description="The worker is stopping the turn."),
            **ERROR_RESPONSES,
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        turn = services.turn_cancel(tenant=self.tenant, session=self.get_object())
        if turn is None:
            return json_error(404, "Not found", "This session has no active turn.")
        if turn.is_final:
            return Response(TurnSerializer(turn).data)
        return Response(TurnCancellingSerializer(turn).data, status=status.HTTP_202_ACCEPTED)

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
    pagination_class = DefaultPagination

    @extend_schema(
        tags=["sessions"],
        summary="The session's history, oldest first (paginated)",
        responses={200: MessageSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, session_id):
        messages = selectors.message_list(tenant=self.tenant, session=self.get_session(session_id))
        return paginated(self, request, messages, MessageSerializer)

    @extend_schema(
        tags=["sessions"],
        summary="Post a message; a turn answers it on a worker",
        description=(
            "Stores the message and, for a user message with `auto_run` (default), queues a turn: "
            "202 `{message_id, turn_id}`. Follow the turn on `/ws`, `GET /api/turns/{id}`, or its events. "
            "Secrets in text (API keys, tokens, private keys, passwords in URLs) are redacted before "
            "they are stored or sent to a model. Chat routes have their own rate limit (CHAT_RATE_LIMIT). "
            "A session answers its messages one at a time, in order: `multitask` says what happens when it "
            "is still answering an earlier one (409 with `reject`)."
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
                api_key=self.principal.api_key,
                idempotency_key=idempotency_key(request.headers),
                multitask=data["multitask"],
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
            new = services.turn_retry(tenant=self.tenant, turn=turn, api_key=self.principal.api_key)
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
    # Read by drf-spectacular too, so the schema documents the paginated shape and its parameters.
    pagination_class = DefaultPagination

    @extend_schema(
        tags=["turns"],
        summary="The turn's tool calls with arguments, results and policy decisions (paginated)",
        description="`id` is our id of the call (the `tool_call_id` of approvals and events); `model_call_id` is "
        "the id the model gave it, unique only within the turn.",
        responses={200: ToolCallSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, turn_id):
        calls = selectors.tool_call_list(tenant=self.tenant, turn=self.get_turn(turn_id))
        return paginated(self, request, calls, ToolCallSerializer)


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
    pagination_class = DefaultPagination

    @extend_schema(
        tags=["turns"],
        summary="Feedback on this turn, newest first (paginated)",
        responses={200: FeedbackSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, turn_id):
        feedback = selectors.feedback_list(tenant=self.tenant, turn=self.get_turn(turn_id))
        return paginated(self, request, feedback, FeedbackSerializer)

    @extend_schema(
        tags=["turns"],
        summary="Grade the turn 1-5 (one grade per person; posting again changes what you send)",
        description="The first feedback needs `grade` (201). Later posts change only the fields sent (200): "
        'a new grade keeps the comment; `{"comment": ""}` clears it.',
        request=FeedbackWriteSerializer,
        responses={201: FeedbackSerializer, 200: FeedbackSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, turn_id):
        return self._upsert(request, turn_id)

    @extend_schema(
        tags=["turns"],
        summary="Change your grade or comment (the same as POST)",
        description="Changes only the fields sent; 201 when this is your first feedback on the turn.",
        request=FeedbackWriteSerializer,
        responses={200: FeedbackSerializer, 201: FeedbackSerializer, **ERROR_RESPONSES},
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
            grade=payload.validated_data.get("grade"),
            comment=payload.validated_data.get("comment"),
        )
        return Response(FeedbackSerializer(feedback).data, status=201 if created else 200)
