from __future__ import annotations

from collections.abc import Collection

from django.db.models import Min, Q, QuerySet

from apps.events.models import Event


def events_after(
    *,
    tenant,
    after_id: int = 0,
    session_id=None,
    turn_id=None,
    types=None,
    session_ids: Collection | None = None,
    exclude_ids: Collection[int] = (),
    limit: int = 1000,
) -> QuerySet[Event]:
    """Events of one tenant with id > after_id, oldest first, optionally narrowed.

    `session_ids` is a socket's subscription set: those sessions' events plus the tenant-level
    ones (no session). `exclude_ids` leaves out events already sent (the SSE late-commit window).
    `tenant` may be a Tenant or its id.
    """
    events = Event.objects.filter(tenant_id=getattr(tenant, "pk", tenant), id__gt=after_id)
    if session_id is not None:
        events = events.filter(session_id=session_id)
    if session_ids:
        events = events.filter(Q(session_id__in=list(session_ids)) | Q(session_id__isnull=True))
    if turn_id is not None:
        events = events.filter(turn_id=turn_id)
    if types:
        events = events.filter(type__in=list(types))
    if exclude_ids:
        events = events.exclude(id__in=list(exclude_ids))
    return events.order_by("id")[:limit]


def newest_event_id(*, tenant) -> int:
    """The tenant's latest event id (0 for none): where a stream without a resume id starts."""
    latest = Event.objects.filter(tenant_id=getattr(tenant, "pk", tenant)).order_by("-id").values_list("id", flat=True)
    return latest.first() or 0


def oldest_event_id() -> int | None:
    """The oldest id still in the log (all tenants): a resume from before it may have lost events
    to trimming."""
    return Event.objects.order_by("id").values_list("id", flat=True).first()


def turn_first_event_ids(*, tenant, turn_ids: Collection) -> dict:
    """The id of each turn's first event ({turn_id: id}; turns without events are left out): a
    page that renders a turn still in progress replays its events from just before this one."""
    if not turn_ids:
        return {}
    rows = (
        Event.objects.filter(tenant_id=getattr(tenant, "pk", tenant), turn_id__in=list(turn_ids))
        .values("turn_id")
        .annotate(first=Min("id"))
    )
    return {row["turn_id"]: row["first"] for row in rows}
