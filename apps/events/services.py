"""publish(): the one way anything emits an event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core.db import non_durable_commit
from apps.events.models import Event
from apps.events.push import pusher


def tenant_group(tenant_id) -> str:
    return f"tenant.{tenant_id}"


def session_group(session_id) -> str:
    return f"session.{session_id}"


def envelope(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "tenant": str(event.tenant_id),
        "session_id": str(event.session_id) if event.session_id else None,
        "turn_id": str(event.turn_id) if event.turn_id else None,
        "ts": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }


def publish(tenant, type: str, data: dict[str, Any] | None = None, *, session=None, turn=None) -> dict[str, Any]:
    """Append an event to the log and push it to the tenant's and the session's channel groups.

    The log row is the truth (replay reads it); the push is best effort and happens after the
    surrounding transaction commits, so a client never sees an event it could not replay.
    `session` and `turn` may be objects or ids.

    Outside a transaction (token batches, most notices) the event commits without waiting for
    the disk (apps/core/db.non_durable_commit: 4 ms less per event here); a database crash may
    lose the last of those, which a client replaying the log lives without: the turn's final
    state and answer are written durably, in the engine's own transactions.
    """
    session_id = getattr(session, "pk", session)
    turn_id = getattr(turn, "pk", turn)
    with non_durable_commit():
        event = Event.objects.create(
            tenant_id=getattr(tenant, "pk", tenant), session_id=session_id, turn_id=turn_id, type=type, data=data or {}
        )
        message = envelope(event)
        transaction.on_commit(lambda: _push(message))
    return message


def _push(message: dict[str, Any]) -> None:
    pusher.enqueue(tenant_group(message["tenant"]), {"type": "event.push", "event": message})


def ephemeral_envelope(*, tenant_id, type: str, data: dict[str, Any]) -> dict[str, Any]:
    """An envelope for a notice that is not logged (system_status): `id` is null, so it never
    moves a client's resume cursor and is never replayed."""
    return {
        "id": None,
        "type": type,
        "tenant": str(tenant_id),
        "session_id": None,
        "turn_id": None,
        "ts": timezone.now().isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def event_log_trim(*, older_than: datetime, batch_size: int = 5000) -> int:
    """Delete events created before `older_than`, in batches so no statement holds locks long.

    Maintenance across all tenants (retention is one platform setting); returns how many rows
    went. Idempotent, and safe to run concurrently with itself and with publish().
    """
    deleted = 0
    while True:
        ids = list(
            Event.objects.filter(created_at__lt=older_than).order_by("id").values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        count, _ = Event.objects.filter(id__in=ids).delete()
        deleted += count
        if len(ids) < batch_size:
            return deleted
