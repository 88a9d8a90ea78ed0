"""Reads in conversations, always scoped to a tenant."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db.models import Count, DecimalField, IntegerField, Q, QuerySet, Sum, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, TruncDate

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


def usage_by_day_and_agent(*, tenant, since, until=None) -> list[dict]:
    """Model spend per UTC day and agent: turns, input and output tokens, cost in USD.

    One aggregate over the tenant's turns created in [since, until) (the `tenant, created_at`
    index bounds it), one row per day and agent that had any turn, days ascending. Tokens come
    from `Turn.usage`, cost from `Turn.cost_usd` (settled call by call, failed turns included:
    their calls were paid for). The dashboard's Usage page reads only this; when the stats
    rollups exist they answer the same rows.
    """
    turns = Turn.objects.filter(tenant=tenant, created_at__gte=since)
    if until is not None:
        turns = turns.filter(created_at__lt=until)

    def tokens(key: str):
        return Coalesce(Sum(Cast(KeyTextTransform(key, "usage"), IntegerField())), Value(0))

    rows = (
        turns.annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day", "agent_id", "agent__name")
        .annotate(
            turns=Count("id"),
            input_tokens=tokens("input_tokens"),
            output_tokens=tokens("output_tokens"),
            cost_usd=Coalesce(Sum("cost_usd"), Value(0), output_field=DecimalField(max_digits=14, decimal_places=6)),
        )
        .order_by("day", "agent__name")
    )
    return [
        {
            "day": row["day"],
            "agent_id": row["agent_id"],
            "agent": row["agent__name"] or "(no agent)",
            "turns": row["turns"],
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "cost_usd": row["cost_usd"],
        }
        for row in rows
    ]
