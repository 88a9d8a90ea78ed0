"""Every write in conversations except a turn's own transitions (those are in turns/)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from apps.conversations.attachments import attachments_forget_session, parts_resolve_refs
from apps.conversations.budgets import BudgetExhausted, budget_check
from apps.conversations.models import ChatSession, Feedback, Message, Turn
from apps.conversations.turns import state
from apps.conversations.turns.services import ENQUEUE, SessionBusy, turn_cancel, turn_start
from apps.core.errors import Conflict
from apps.events import types as event_types
from apps.events.services import publish
from apps.events.ws_auth import sockets_close_for_tenant
from apps.tenancy.services import tenant_limit_check, tenant_suspend
from apps.tools.guardrails import redact_secrets, redact_url

__all__ = ["BudgetExhausted", "turn_cancel"]  # re-exported: the views use them from here


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
    with transaction.atomic():
        tenant_limit_check(
            tenant=tenant,
            setting="max_sessions",
            noun="sessions",
            count_existing=lambda: ChatSession.objects.filter(tenant=tenant).count(),
        )
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
            state.turn_stop(turn_id=turn_id, reason=state.CANCELLED, keep_partial=False)
        attachments_forget_session(tenant=tenant, session=session)
        ChatSession.objects.filter(pk=session.pk, tenant=tenant).delete()


# --- messages and turns ----------------------------------------------------------------------------


def check_monthly_budget(*, tenant, api_key=None) -> None:
    """The early refusal before a turn is queued: the tenant's or the key's monthly budget is
    already spent (settled plus reserved). Raises BudgetExhausted naming the budget; the
    per-call reservation in apps/conversations/budgets.py is what holds under concurrency."""
    budget_check(tenant=tenant, api_key=api_key)


def _redact_parts(parts: list[dict]) -> tuple[list[dict], list[dict]]:
    """Secrets in text parts, and credentials in the URLs of image and file parts
    (`https://user:pass@host/x.png`, `?token=`), are replaced before anything stores or sends them."""
    clean, findings = [], []
    for part in parts:
        if part.get("type") == "text" and part.get("text"):
            redaction = redact_secrets(part["text"])
            if redaction.redacted:
                findings += [{"type": f["type"]} for f in redaction.findings]
                part = {**part, "text": redaction.text}
        for field in ("url", "ref"):
            value = part.get(field)
            if isinstance(value, str) and value:
                cleaned = redact_url(value)
                if cleaned != value:
                    findings.append({"type": "url_credentials"})
                    part = {**part, field: cleaned}
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
    api_key=None,
    idempotency_key: str = "",
    multitask: str = ENQUEUE,
) -> tuple[Message, Turn | None]:
    """Store a message and, for a user message with auto_run, queue the turn that answers it
    (behind the session's active turns, or as `multitask` says: turns/services.turn_start).

    `api_key` is the key of the caller (the principal's), if any: the turn records it, and its
    monthly budget is charged for the turn's model calls.

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
        check_monthly_budget(tenant=tenant, api_key=api_key)
        if session.agent is None or not session.agent.enabled:
            raise ValidationError({"session": ["This session's agent is missing or disabled; assign an agent."]})
    # A ref must name one of the session's attachments; the part takes the stored type and name.
    parts = parts_resolve_refs(tenant=tenant, session=session, parts=parts)
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
                api_key=api_key if getattr(api_key, "pk", None) else None,
                multitask=multitask,
            )
    except SessionBusy as busy:
        # Nothing was written; the refusal is still news to the session's other clients.
        publish(
            tenant,
            event_types.MESSAGE_REJECTED,
            {"active_turn_id": str(busy.active_turn_id), "multitask": "reject"},
            session=session,
        )
        raise
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
    *, tenant, session, role, parts, metadata, runs, findings, author, idempotency_key, api_key, multitask
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
        turn = turn_start(
            tenant=tenant,
            session=session,
            input_message=message,
            api_key=api_key,
            metadata={"redacted": bool(findings), "author_id": getattr(author, "pk", None)},
            multitask=multitask,
        )
    return message, turn


def turn_retry(*, tenant, turn: Turn, api_key=None) -> Turn:
    """A new turn answering the same input; the old one stays as it was. `api_key`: the
    retrying caller's key, charged like message_post's."""
    if not turn.is_final:
        raise Conflict("The turn is still active; cancel it or wait for it to finish before retrying.")
    check_monthly_budget(tenant=tenant, api_key=api_key)
    return turn_start(
        tenant=tenant,
        session=turn.session,
        input_message=turn.input_message,
        retry_of=turn,
        api_key=api_key,
        metadata={"retry_of": str(turn.pk)},
    )


# --- suspension -------------------------------------------------------------------------------------

SUSPENDED_REASON = state.SUSPENDED


def turns_stop_for_tenant(*, tenant, reason: str = SUSPENDED_REASON) -> int:
    """Stop every active turn of the tenant, as turn_cancel does: queued and parked turns end
    at once, running ones at their next checkpoint. Returns how many turns were told to stop."""
    stopped = 0
    for turn_id in Turn.objects.filter(tenant=tenant, status__in=Turn.ACTIVE).values_list("pk", flat=True):
        state.turn_stop(turn_id=turn_id, reason=reason, keep_partial=False)
        stopped += 1
    return stopped


def tenant_suspend_and_stop(*, tenant, actor, reason: str = "") -> bool:
    """Suspend the tenant and stop what it has running: its turns and its live sockets and
    streams. Tenancy cannot import the apps above it, so the operators' entry points (the admin
    action, `manage.py suspend_tenant`) call this instead of tenancy's tenant_suspend alone."""
    if not tenant_suspend(tenant=tenant, actor=actor, reason=reason):
        return False
    turns_stop_for_tenant(tenant=tenant, reason=SUSPENDED_REASON)
    sockets_close_for_tenant(tenant_id=str(tenant.pk))
    return True


# --- feedback ---------------------------------------------------------------------------------------


def feedback_upsert(
    *, tenant, turn: Turn, user, grade: int | None = None, comment: str | None = None
) -> tuple[Feedback, bool]:
    """One grade per person per turn. Only what is given changes: a second post with a grade and
    no comment keeps the comment. A first feedback needs a grade."""
    if grade is not None and not 1 <= int(grade) <= 5:
        raise ValidationError({"grade": ["Grade from 1 to 5."]})
    if grade is None and comment is None:
        raise ValidationError({"grade": ["Send a grade, a comment, or both."]})
    user = user if getattr(user, "pk", None) else None
    changes: dict[str, Any] = {}
    if grade is not None:
        changes["grade"] = int(grade)
    if comment is not None:
        changes["comment"] = comment
    with transaction.atomic():
        if grade is None:
            # A comment alone amends an existing grade; the update is one statement, so two
            # concurrent amendments cannot lose the grade.
            updated = Feedback.objects.filter(tenant=tenant, turn=turn, user=user).update(
                **changes, updated_at=timezone.now()
            )
            if not updated:
                raise ValidationError({"grade": ["Grade the turn (1-5) before commenting on it."]})
            return Feedback.objects.get(tenant=tenant, turn=turn, user=user), False
        return Feedback.objects.update_or_create(
            tenant=tenant,
            turn=turn,
            user=user,
            defaults=changes,
            create_defaults={"comment": "", **changes},
        )


# --- recovery -------------------------------------------------------------------------------------

QUEUED_GRACE = dt.timedelta(seconds=60)


def turn_ids_needing_recovery(*, now: dt.datetime | None = None) -> list:
    now = now or timezone.now()
    stale = Q(status=Turn.Status.RUNNING, lease_expires_at__lt=now) | Q(
        status=Turn.Status.QUEUED, created_at__lt=now - QUEUED_GRACE
    )
    return list(Turn.objects.filter(stale).values_list("pk", flat=True)[:500])
