"""Every write in conversations except running a turn (that is engine.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from apps.conversations import cancellation
from apps.conversations.dispatch import turn_enqueue_on_commit
from apps.conversations.models import ChatSession, Feedback, Message, Turn
from apps.core.errors import Conflict
from apps.events import types as event_types
from apps.events.services import publish
from apps.tools.guardrails import redact_secrets


class BudgetExhausted(Exception):
    """The tenant's monthly budget is spent; no new turns until the next month or a raise."""


# --- sessions ------------------------------------------------------------------------------------


def session_create(
    *,
    tenant,
    agent,
    created_by=None,
    title: str = "",
    nickname: str = "",
    mode: str = ChatSession.Mode.CHAT,
    metadata: dict | None = None,
) -> ChatSession:
    if agent is not None and agent.tenant_id != tenant.pk:
        raise ValidationError({"agent": ["No such agent."]})
    return ChatSession.objects.create(
        tenant=tenant,
        agent=agent,
        created_by=created_by if getattr(created_by, "pk", None) else None,
        title=title,
        nickname=nickname,
        mode=mode,
        metadata=metadata or {},
    )


def session_update(*, tenant, session: ChatSession, **changes: Any) -> ChatSession:
    allowed = {"title", "nickname", "mode", "metadata", "archived", "agent"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({key: ["Cannot be changed."] for key in unknown})
    agent = changes.get("agent")
    if agent is not None and agent.tenant_id != tenant.pk:
        raise ValidationError({"agent": ["No such agent."]})
    for field, value in changes.items():
        setattr(session, field, value)
    session.save(update_fields=[*changes.keys(), "updated_at"])
    publish(tenant, event_types.SESSION_UPDATED, {"fields": sorted(changes)}, session=session)
    return session


def session_delete(*, tenant, session: ChatSession) -> None:
    with transaction.atomic():
        active = Turn.objects.filter(session=session, status__in=Turn.ACTIVE).values_list("pk", flat=True)
        for turn_id in active:
            cancellation.request(turn_id)
        ChatSession.objects.filter(pk=session.pk, tenant=tenant).delete()


# --- messages and turns ----------------------------------------------------------------------------


def month_start(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def tenant_month_spend(*, tenant) -> Decimal:
    total = Turn.objects.filter(tenant=tenant, created_at__gte=month_start()).aggregate(total=Sum("cost_usd"))["total"]
    return total or Decimal("0")


def check_monthly_budget(*, tenant) -> None:
    budget = (tenant.settings or {}).get("monthly_budget_usd")
    if budget in (None, ""):
        return
    spent = tenant_month_spend(tenant=tenant)
    if spent >= Decimal(str(budget)):
        raise BudgetExhausted(
            f"This tenant's monthly budget of ${Decimal(str(budget)):.2f} is spent (${spent:.4f} this month). "
            "An owner can raise monthly_budget_usd in the tenant settings."
        )


def _redact_parts(parts: list[dict]) -> tuple[list[dict], list[dict]]:
    """Secrets in text parts are replaced before anything stores or sends them."""
    clean, findings = [], []
    for part in parts:
        if part.get("type") == "text" and part.get("text"):
            redaction = redact_secrets(part["text"])
            if redaction.redacted:
                findings += [{"type": f["type"]} for f in redaction.findings]
                part = {**part, "text": redaction.text}
        clean.append(part)
    return clean, findings


def message_post(
    *,
    tenant,
    session: ChatSession,
    role: str,
    parts: list[dict],
    author=None,
    auto_run: bool = True,
    idempotency_key: str = "",
) -> tuple[Message, Turn | None]:
    """Store a message and, for a user message with auto_run, queue the turn that answers it.

    Message and turn are written in one transaction; the worker is told on commit, so it never
    looks for a turn that is not there yet. A repeated `idempotency_key` in the session returns
    the first post's message and turn instead of writing new ones.
    """
    if idempotency_key:
        earlier = _idempotent_replay(tenant=tenant, session=session, key=idempotency_key)
        if earlier is not None:
            return earlier
    if session.archived:
        raise Conflict("This session is archived; unarchive it to continue.")
    runs = auto_run and role == Message.Role.USER
    if runs:
        check_monthly_budget(tenant=tenant)
        if session.agent is None or not session.agent.enabled:
            raise ValidationError({"session": ["This session's agent is missing or disabled; assign an agent."]})
    clean_parts, findings = _redact_parts(parts)
    metadata = {"redactions": findings} if findings else {}
    try:
        with transaction.atomic():
            message, turn = _write_message_and_turn(
                tenant=tenant,
                session=session,
                role=role,
                parts=clean_parts,
                metadata=metadata,
                runs=runs,
                findings=findings,
                author=author,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        # A concurrent retry with the same key won the unique constraint: answer with its post.
        earlier = _idempotent_replay(tenant=tenant, session=session, key=idempotency_key) if idempotency_key else None
        if earlier is None:
            raise
        return earlier
    return message, turn


def _idempotent_replay(*, tenant, session: ChatSession, key: str) -> tuple[Message, Turn | None] | None:
    message = Message.objects.filter(tenant=tenant, session=session, idempotency_key=key).first()
    if message is None:
        return None
    return message, Turn.objects.filter(tenant=tenant, input_message=message).order_by("created_at").first()


def _write_message_and_turn(
    *, tenant, session, role, parts, metadata, runs, findings, author, idempotency_key
) -> tuple[Message, Turn | None]:
    message = Message.objects.create(
        tenant=tenant,
        session=session,
        role=role,
        parts=parts,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )
    ChatSession.objects.filter(pk=session.pk).update(last_activity_at=timezone.now())
    turn = None
    if runs:
        turn = Turn.objects.create(
            tenant=tenant,
            session=session,
            agent=session.agent,
            input_message=message,
            metadata={"redacted": bool(findings), "author_id": getattr(author, "pk", None)},
        )
        turn_enqueue_on_commit(turn_id=turn.pk)
    return message, turn


def turn_retry(*, tenant, turn: Turn) -> Turn:
    """A new turn answering the same input; the old one stays as it was."""
    if not turn.is_final:
        raise Conflict("The turn is still active; cancel it or wait for it to finish before retrying.")
    check_monthly_budget(tenant=tenant)
    with transaction.atomic():
        new = Turn.objects.create(
            tenant=tenant,
            session=turn.session,
            agent=turn.session.agent or turn.agent,
            input_message=turn.input_message,
            retry_of=turn,
            metadata={"retry_of": str(turn.pk)},
        )
        turn_enqueue_on_commit(turn_id=new.pk)
    return new


def turn_cancel(*, tenant, session: ChatSession) -> Turn | None:
    """Cancel the session's active turn. A queued turn ends at once; a running one stops at its
    next token or step (the worker checks a Redis flag), keeping its partial output."""
    turn = Turn.objects.filter(tenant=tenant, session=session, status__in=Turn.ACTIVE).order_by("-created_at").first()
    if turn is None:
        return None
    now = timezone.now()
    ended = Turn.objects.filter(pk=turn.pk, status__in=[Turn.Status.QUEUED, Turn.Status.WAITING_APPROVAL]).update(
        status=Turn.Status.CANCELLED, cancel_requested=True, finished_at=now, error="cancelled before it ran"
    )
    if ended:
        from apps.policy.models import Approval

        # A cancelled turn's waiting tool call will never run: close its approval too.
        Approval.objects.filter(turn=turn, status=Approval.Status.PENDING).update(
            status=Approval.Status.EXPIRED, decided_at=now, decided_by_label="system:turn cancelled"
        )
        publish(
            tenant, event_types.TURN_CANCELLED, {"partial_text": "", "reason": "cancelled"}, session=session, turn=turn
        )
    else:
        Turn.objects.filter(pk=turn.pk).update(cancel_requested=True)
        cancellation.request(turn.pk)
    turn.refresh_from_db()
    return turn


# --- feedback ---------------------------------------------------------------------------------------


def feedback_upsert(*, tenant, turn: Turn, user, grade: int, comment: str = "") -> tuple[Feedback, bool]:
    if not 1 <= int(grade) <= 5:
        raise ValidationError({"grade": ["Grade from 1 to 5."]})
    user = user if getattr(user, "pk", None) else None
    feedback, created = Feedback.objects.update_or_create(
        tenant=tenant, turn=turn, user=user, defaults={"grade": int(grade), "comment": comment}
    )
    return feedback, created


# --- recovery -------------------------------------------------------------------------------------

QUEUED_GRACE = dt.timedelta(seconds=60)


def turn_ids_needing_recovery(*, now: dt.datetime | None = None) -> list:
    now = now or timezone.now()
    stale = Q(status=Turn.Status.RUNNING, lease_expires_at__lt=now) | Q(
        status=Turn.Status.QUEUED, created_at__lt=now - QUEUED_GRACE
    )
    return list(Turn.objects.filter(stale).values_list("pk", flat=True)[:500])
