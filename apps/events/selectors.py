from __future__ import annotations

from django.db.models import QuerySet

from apps.events.models import Event


def events_after(
    *, tenant, after_id: int = 0, session_id=None, turn_id=None, types=None, limit: int = 1000
) -> QuerySet[Event]:
    """Events of one tenant with id > after_id, oldest first, optionally narrowed."""
    events = Event.objects.filter(tenant=tenant, id__gt=after_id)
    if session_id is not None:
        events = events.filter(session_id=session_id)
    if turn_id is not None:
        events = events.filter(turn_id=turn_id)
    if types:
        events = events.filter(type__in=list(types))
    return events.order_by("id")[:limit]
