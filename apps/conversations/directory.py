"""Conversations' answers to apps.core.chat_sessions: the questions memory and events ask about
sessions and turns without importing them. Registered by ConversationsConfig.ready()."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import Count

from apps.conversations.models import ChatSession, Turn


def owned_session_ids(*, tenant_id, session_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    ids = list(session_ids)
    if not ids:
        return set()
    return set(ChatSession.objects.filter(tenant_id=tenant_id, pk__in=ids).values_list("pk", flat=True))


def active_turn_counts(*, tenant_ids: Iterable) -> dict[str, int]:
    """Queued, running and waiting turns per tenant, for system_status; one grouped query."""
    ids = list(tenant_ids)
    counts = dict.fromkeys((str(t) for t in ids), 0)
    if not ids:
        return counts
    rows = (
        Turn.objects.filter(tenant_id__in=ids, status__in=Turn.ACTIVE)
        .values("tenant_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[str(row["tenant_id"])] = row["n"]
    return counts
