"""What a finished turn hands to memory. Memory takes ids and texts and never imports the turn
(docs/architecture.md, "Import map"); this reads the turn and calls it."""

from __future__ import annotations

import logging

from apps.conversations.models import Turn
from apps.memory.services import memory_record_exchange

logger = logging.getLogger(__name__)


def memory_record_turn(*, turn) -> None:
    """Episodic and working memory for a completed turn; nothing for any other.

    Reads the turn afresh (the engine's copy predates its final write) with its two messages,
    then calls `memory_record_exchange`, which is idempotent per turn. Never raises: the turn is
    already answered, and a memory failure is logged rather than turned into a failed turn."""
    try:
        fresh = (
            Turn.objects.select_related("input_message", "output_message")
            .filter(pk=turn.pk, status=Turn.Status.COMPLETED, output_message__isnull=False)
            .first()
        )
    except Exception:
        logger.exception("turn %s: reading it for memory failed", turn.pk)
        return
    if fresh is None:
        return
    memory_record_exchange(
        tenant_id=fresh.tenant_id,
        agent_id=fresh.agent_id,
        session_id=fresh.session_id,
        turn_id=fresh.pk,
        user_text=fresh.input_message.text if fresh.input_message else "",
        answer_text=fresh.output_message.text,
        model=fresh.model,
        tool_call_count=fresh.tool_call_count,
    )
