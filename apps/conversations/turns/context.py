"""Context assembly: what a turn sends to the model, and the snapshot the observatory shows."""

from __future__ import annotations

import datetime
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from apps.agents.providers.base import ChatMessage, ToolSpec
from apps.agents.routing import estimate_tokens
from apps.agents.tokens import estimate_input_tokens
from apps.conversations.models import Message, Turn
from apps.conversations.turns.attachment_parts import AttachmentParts
from apps.memory.selectors import context_query_vector, memory_for_context
from apps.memory.text import CONTEXT_HEADER as MEMORY_HEADER
from apps.tools.registry import Tool, tools_for_agent
from apps.tools.rules import rules_prompt_for
from apps.tools.skills import skills_prompt_for

# The history window: the most recent messages, newest kept first, within both limits.
HISTORY_MAX_MESSAGES = 20
HISTORY_MAX_TOKENS = 6000


@dataclass
class TurnContext:
    messages: list[ChatMessage]
    tools: list[Tool]
    input_text: str
    has_images: bool
    snapshot: dict[str, Any] = field(default_factory=dict)

    @property
    def tool_specs(self) -> list[ToolSpec]:
        return [ToolSpec(name=t.name, description=t.description, parameters=t.parameters) for t in self.tools]


def system_prompt_for(agent) -> str:
    sections = [agent.system_prompt.strip()]
    if agent.persona.strip():
        sections.append(f"Persona: {agent.persona.strip()}")
    return "\n\n".join(s for s in sections if s)


def _history(turn: Turn) -> list[Message]:
    """The session's messages before this turn's input, each answer right after its question.

    An answer is written when its turn ends, which can be after later messages were posted (five
    messages posted at once, answered in order; an interrupted answer written after the message
    that interrupted it). So an answer is placed by its question's time, and the answers of
    earlier turns are in the window even when they were written after this turn's input."""
    asked_at = Subquery(
        Turn.objects.filter(output_message=OuterRef("pk"))
        .values("input_message__created_at")
        .order_by("created_at")[:1]
    )
    # "Earlier" is by the messages they answer, as the claim orders a session's turns (state.py):
    # two racing posts can commit their turns in the other order.
    earlier_answers = Turn.objects.filter(
        session_id=turn.session_id,
        input_message__created_at__lt=turn.input_message.created_at,
        output_message__isnull=False,
    ).values("output_message_id")
    # Only the session's latest messages are looked at (the window's size three times over, the
    # answers of those turns included), so a long session costs what a short one does.
    horizon = Coalesce(
        Subquery(
            Message.objects.filter(session_id=turn.session_id, created_at__lt=turn.input_message.created_at)
            .order_by("-created_at")
            .values("created_at")[3 * HISTORY_MAX_MESSAGES : 3 * HISTORY_MAX_MESSAGES + 1]
        ),
        Value(datetime.datetime.min.replace(tzinfo=datetime.UTC)),
    )
    earlier = (
        Message.objects.filter(session_id=turn.session_id, role__in=[Message.Role.USER, Message.Role.ASSISTANT])
        .filter(created_at__gte=horizon)
        .filter(Q(created_at__lt=turn.input_message.created_at) | Q(pk__in=earlier_answers))
        .exclude(pk=turn.input_message_id)
        .annotate(placed_at=Coalesce(asked_at, F("created_at")))
        # An answer sorts just after its question (same time, assistant after user).
        .order_by("-placed_at", "role", "-created_at")[:HISTORY_MAX_MESSAGES]
    )
    kept, budget = [], HISTORY_MAX_TOKENS
    for message in earlier:
        cost = estimate_tokens(message.text)
        if cost > budget:
            break
        budget -= cost
        kept.append(message)
    return list(reversed(kept))


def _memory_section(retrieved: list[dict]) -> str:
    if not retrieved:
        return ""
    lines = [f"- {item.get('summary') or item.get('content')}" for item in retrieved]
    return MEMORY_HEADER + "\n" + "\n".join(lines)


# One thread per process embeds the recall query while the context's database reads run: the
# embedding runtimes release the GIL, so the two overlap on two cores.
_embedding_ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recall-embed")


def _timed_query_vector(text: str) -> tuple[list[float] | None, float]:
    started = time.perf_counter()
    vector = context_query_vector(text)
    return vector, (time.perf_counter() - started) * 1000


def build_context(*, turn: Turn, agent, query_vector: list[float] | None = None) -> TurnContext:
    """`query_vector`: the recall query embedded ahead (memory.selectors.context_query_vector of
    the input text). Without it the query is embedded in a thread while the rules, skills,
    history and tools are read."""
    query_text = turn.input_message.text
    ahead = None
    if query_vector is None and query_text.strip() and settings.MEMORY_CONTEXT_TOKENS > 0:
        ahead = _embedding_ahead.submit(_timed_query_vector, query_text)
    rules_text, rules_used = rules_prompt_for(turn.tenant)
    skills_text, skills_used = skills_prompt_for(agent)
    history = _history(turn)
    tools = tools_for_agent(agent)
    input_message = turn.input_message
    recall_started, recall_timings = time.perf_counter(), {}
    embedded_ahead_ms = None
    if ahead is not None:
        query_vector, embedded_ahead_ms = ahead.result()
    retrieved = memory_for_context(
        tenant=turn.tenant,
        agent=agent,
        session=turn.session_id,
        query_text=query_text,
        token_budget=settings.MEMORY_CONTEXT_TOKENS,
        timings=recall_timings,
        query_vector=query_vector,
    )
    recall_ms = (time.perf_counter() - recall_started) * 1000
    memory_text = _memory_section(retrieved)
    system = "\n\n".join(part for part in (system_prompt_for(agent), rules_text, skills_text, memory_text) if part)

    # Attachments: images as data when the input has one (a vision model answers), text files
    # within one budget that the input's files use first, then the history's newest first.
    attachments = AttachmentParts(session_id=turn.session_id, tenant_id=turn.tenant_id, agent=agent)
    attachments.load([*history, input_message])
    show_images = input_message.has_images
    input_content = attachments.content(input_message, show_images=show_images)
    history_contents = [attachments.content(m, show_images=show_images) for m in reversed(history)][::-1]

    messages = [ChatMessage(role="system", content=system)] if system else []
    messages += [ChatMessage(role=m.role, content=c) for m, c in zip(history, history_contents, strict=True)]
    messages.append(ChatMessage(role="user", content=input_content))

    # Model-agnostic (characters / 4) but complete: framing, images and the tool schemas count.
    # The engine recounts with the chosen model's tokenizer before it reserves the call's cost.
    input_tokens = estimate_input_tokens(
        messages, [ToolSpec(name=t.name, description=t.description, parameters=t.parameters) for t in tools]
    )
    snapshot = {
        "system_prompt": system,
        "history": [{"message_id": str(m.pk), "role": m.role, "text": m.text} for m in history],
        "rules": rules_used,
        "skills": skills_used,
        "retrieved": retrieved,
        "recall_ms": round(recall_ms, 2),  # the memory search, query embedding included
        # The embedding model's share: run ahead, overlapping the reads above, when it could be.
        "recall_embed_ms": round(embedded_ahead_ms or recall_timings.get("embed_ms", 0.0), 2),
        "recall_embedded_ahead": embedded_ahead_ms is not None,
        "tools": [{"name": t.name, "description": t.description, "side_effect": t.side_effect} for t in tools],
        "input": input_message.parts,
        # What each attachment became: image (as data), text (how much), note (named only), missing.
        "attachments": attachments.used,
        "estimated_input_tokens": input_tokens,
    }
    return TurnContext(
        messages=messages,
        tools=tools,
        input_text=input_message.text,
        has_images=input_message.has_images,
        snapshot=snapshot,
    )
