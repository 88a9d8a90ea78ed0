"""Reads in conversations, always scoped to a tenant."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from apps.agents.selectors import agent_resolve  # noqa: F401 - callers here use selectors.agent_resolve
from apps.conversations.models import ChatSession, Feedback, Message, ToolCall, Turn


def session_list(*, tenant, include_archived: bool = True, search: str = "") -> QuerySet[ChatSession]:
    sessions = ChatSession.objects.filter(tenant=tenant).select_related("agent").order_by("-last_activity_at")
    if search:
        sessions = sessions.filter(Q(title__icontains=search) | Q(nickname__icontains=search))
    return sessions if include_archived else sessions.filter(archived=False)


def session_get(*, tenant, session_id: uuid.UUID) -> ChatSession | None:
    return session_list(tenant=tenant).filter(pk=session_id).first()


def message_list(*, tenant, session: ChatSession) -> QuerySet[Message]:
    return Message.objects.filter(tenant=tenant, session=session).order_by("created_at")


def turn_list(*, tenant, session: ChatSession | None = None) -> QuerySet[Turn]:
    turns = Turn.objects.filter(tenant=tenant).select_related("agent")
    if session is not None:
        turns = turns.filter(session=session)
    return turns.order_by("created_at")


def turn_get(*, tenant, turn_id: uuid.UUID) -> Turn | None:
    return turn_list(tenant=tenant).filter(pk=turn_id).first()


def tool_call_list(*, tenant, turn: Turn) -> QuerySet[ToolCall]:
    return ToolCall.objects.filter(tenant=tenant, turn=turn).order_by("step", "created_at")


def tool_calls_of_session(*, tenant, session: ChatSession) -> QuerySet[ToolCall]:
    """Every tool call of the session's turns with its approval, if any, in order (one query for
    a whole conversation)."""
    calls = ToolCall.objects.filter(tenant=tenant, turn__session=session).select_related("approval")
    return calls.order_by("turn__created_at", "step", "created_at")


def feedback_list(*, tenant, turn: Turn | None = None, session: ChatSession | None = None) -> QuerySet[Feedback]:
    feedback = Feedback.objects.filter(tenant=tenant).select_related("user")
    if turn is not None:
        feedback = feedback.filter(turn=turn)
    if session is not None:
        feedback = feedback.filter(turn__session=session)
    return feedback.order_by("-created_at")


def active_turn_count(*, tenant) -> int:
    return Turn.objects.filter(tenant=tenant, status__in=Turn.ACTIVE).count()
