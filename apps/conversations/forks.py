"""Session forks: a new session that starts with a copy of another one's history.

The chat page's "edit a past message and resend" forks *before* the edited message and posts
the edited text to the fork; `at` forks keep the chosen message too. The parent is never
changed, so the old branch stays readable (`forks` on its detail, `forked_from` on the fork).

What is copied: the messages (user and assistant, system and tool ones too) up to the fork
point in conversation order, and every attachment of the parent (same refs, the files linked,
apps/conversations/attachments.py), so the copied parts and an edited message that names the
parent's attachments resolve in the fork. Turns, tool calls and feedback are not copied: they
describe how the parent's answers were made and stay with it.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Case, Value, When
from django.http import Http404

from apps.conversations.attachments import attachments_copy_to_session
from apps.conversations.models import ChatSession, Message, Turn
from apps.conversations.services import session_create

AT, BEFORE = "at", "before"
FORK_KINDS = (AT, BEFORE)
FORK_SUFFIX = " (fork)"
_TICK = dt.timedelta(microseconds=1)


def conversation_order(*, tenant, session: ChatSession) -> list[Message]:
    """The session's messages as a reader follows them: each answer right after its question.
    An answer is written when its turn ends, which can be after later messages were posted, so
    it is placed by its question's time (as the turn context does, turns/context.py)."""
    messages = list(Message.objects.filter(tenant=tenant, session=session).order_by("created_at", "pk"))
    asked_at = dict(
        Turn.objects.filter(tenant=tenant, session=session, output_message__isnull=False)
        .order_by("-created_at")
        .values_list("output_message_id", "input_message__created_at")
    )
    return sorted(messages, key=lambda m: (asked_at.get(m.pk, m.created_at), m.pk in asked_at, m.created_at))


def session_fork(*, tenant, session: ChatSession, message_id, kind: str = AT) -> ChatSession:
    """A new session of the same tenant, user and agent holding the history up to the message
    (`at`: including it; `before`: strictly before it). Http404 when the message is not one of
    this session's; the max_sessions limit applies as to any new session."""
    if kind not in FORK_KINDS:
        raise ValueError(f"kind is one of {FORK_KINDS}")
    pivot = Message.objects.filter(tenant=tenant, session=session, pk=message_id).first()
    if pivot is None:
        raise Http404(f"No message {message_id} in this session.")
    history = conversation_order(tenant=tenant, session=session)
    cut = next(i for i, m in enumerate(history) if m.pk == pivot.pk) + (1 if kind == AT else 0)
    title = (session.title or "Session")[: 200 - len(FORK_SUFFIX)] + FORK_SUFFIX
    with transaction.atomic():
        fork = session_create(
            tenant=tenant,
            agent=session.agent,
            created_by=session.created_by,
            title=title,
            nickname=session.nickname,
            mode=session.mode,
            metadata=dict(session.metadata or {}),
        )
        fork.forked_from, fork.forked_at_message, fork.fork_kind = session, pivot, kind
        fork.save(update_fields=["forked_from", "forked_at_message", "fork_kind", "updated_at"])
        _copy_messages(tenant=tenant, messages=history[:cut], target=fork)
        attachments_copy_to_session(tenant=tenant, source=session, target=fork)
    return fork


def _copy_messages(*, tenant, messages: list[Message], target: ChatSession) -> None:
    if not messages:
        return
    copies = [
        Message(
            tenant=tenant,
            session=target,
            role=m.role,
            parts=m.parts,
            metadata={**(m.metadata or {}), "copied_from": str(m.pk)},
        )
        for m in messages
    ]
    Message.objects.bulk_create(copies)
    # created_at is auto_now_add (bulk_create stamps them all "now"): the copies are given
    # strictly increasing times in conversation order, from the originals' times, so the fork's
    # history window reads them in that order and anything posted to the fork comes after.
    stamps, previous = [], None
    for original in messages:
        stamp = original.created_at if previous is None or original.created_at > previous else previous + _TICK
        stamps.append(stamp)
        previous = stamp
    Message.objects.filter(pk__in=[c.pk for c in copies]).update(
        created_at=Case(*[When(pk=c.pk, then=Value(s)) for c, s in zip(copies, stamps, strict=True)])
    )


def fork_ids(*, tenant, session: ChatSession) -> list[str]:
    return [
        str(pk)
        for pk in ChatSession.objects.filter(tenant=tenant, forked_from=session)
        .order_by("created_at")
        .values_list("pk", flat=True)
    ]
