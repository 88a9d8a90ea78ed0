"""The memory page: `/memory/` (search, collections, entries) and `/memory/timeline/` (episodes).

The same selectors and services as the memory API (apps/memory/api/views.py), with its query
validation (SearchQuerySerializer) and its roles: reading and searching need viewer, deleting
entries member, clearing a collection admin. Collections are named in the query string or the
form, never in the path, so a collection name is not an id another tenant could probe.
"""

from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from apps.dashboard.access import member_required
from apps.dashboard.nav import NavItem, nav_add
from apps.dashboard.views.observatory import session_href
from apps.memory import selectors, services
from apps.memory.api.serializers import SearchQuerySerializer
from apps.memory.models import NAME_RE, MemoryKind
from apps.memory.search import MODES
from apps.tenancy.models import Role

nav_add("Work", NavItem("Memory", "memory", "memory"))

PAGE_SIZE = 50
TIMELINE_SIZE = 100


def _collection_param(value: str) -> str:
    return value if value and NAME_RE.match(value) else ""


def _back(collection: str = "") -> str:
    """Where a write returns: the list it was made from."""
    params = {"collection": collection} if collection else {}
    return reverse("dashboard:memory") + (f"?{urlencode(params)}" if params else "")


@require_GET
@member_required
def memory_page(request):
    tenant = request.principal.tenant
    query = request.GET.get("q", "").strip()
    collection = _collection_param(request.GET.get("collection", ""))
    kind = request.GET.get("kind", "")
    kind = kind if kind in MemoryKind.values else ""
    errors: dict = {}
    results = None
    if query:
        params = {"q": query, "mode": request.GET.get("mode", "hybrid"), "k": 20}
        if collection:
            params["collection"] = collection
        if kind:
            params["kind"] = kind
        payload = SearchQuerySerializer(data=params)
        if payload.is_valid():
            data = payload.validated_data
            hits = selectors.memory_search(
                tenant=tenant,
                query=data["q"],
                mode=data["mode"],
                k=data["k"],
                kinds=(data["kind"],) if data.get("kind") else (),
                collection=data.get("collection", ""),
            )
            results = [{"entry": hit.entry, "score": round(hit.score, 4), "match": hit.match_type} for hit in hits]
        else:
            errors = {field: " ".join(str(p) for p in problems) for field, problems in payload.errors.items()}
    try:
        offset = max(0, int(request.GET.get("offset", "0")))
    except ValueError:
        offset = 0
    entries = selectors.memory_entry_list(tenant=tenant, kind=kind or None, collection=collection or None)
    page = list(entries[offset : offset + PAGE_SIZE]) if results is None else []
    total = entries.count() if results is None else len(results)
    rows = results if results is not None else [{"entry": entry, "score": None, "match": None} for entry in page]
    context = {
        "stats": selectors.memory_stats(tenant=tenant),
        "collections": selectors.memory_collections(tenant=tenant),
        "collection": collection,
        "kind": kind,
        "kinds": MemoryKind.choices,
        "query": query,
        "mode": request.GET.get("mode", "hybrid") if request.GET.get("mode") in MODES else "hybrid",
        "modes": MODES,
        "errors": errors,
        "rows": rows,
        "searching": results is not None,
        "total": total,
        "offset": offset,
        "next_offset": offset + PAGE_SIZE if results is None and offset + PAGE_SIZE < total else None,
        "prev_offset": max(0, offset - PAGE_SIZE) if offset else None,
        "can_delete": request.principal.has_role(Role.MEMBER),
        "can_clear": request.principal.has_role(Role.ADMIN),
    }
    return render(request, "dashboard/memory/page.html", context)


@require_GET
@member_required
def memory_timeline(request):
    """Episodes (what each answered turn was about), newest first, grouped by day."""
    tenant = request.principal.tenant
    try:
        session_id = uuid.UUID(request.GET.get("session", ""))
    except ValueError:
        session_id = None
    episodes = selectors.memory_entry_list(tenant=tenant, kind=MemoryKind.EPISODIC, session_id=session_id)
    # The session's title for each episode, in the same query.
    episodes = episodes.select_related("session")[:TIMELINE_SIZE]
    days: list[dict] = []
    for entry in episodes:
        day = entry.created_at.date()
        if not days or days[-1]["day"] != day:
            days.append({"day": day, "first": entry.created_at, "episodes": []})
        days[-1]["episodes"].append(
            {"entry": entry, "session_url": session_href(entry.session_id) if entry.session_id else None}
        )
    context = {"days": days, "limit": TIMELINE_SIZE, "session_filter": session_id}
    return render(request, "dashboard/memory/timeline.html", context)


@require_POST
@member_required(role=Role.MEMBER)
def memory_entry_delete(request, entry_id):
    tenant = request.principal.tenant
    entry = selectors.memory_entry_list(tenant=tenant).filter(pk=entry_id).first()
    if entry is None or not services.memory_entry_delete(tenant=tenant, collection=entry.collection, entry_id=entry.pk):
        raise Http404("No such memory entry.")
    if request.headers.get("HX-Request"):
        response = HttpResponse("")  # the row is swapped out
        response["HX-Trigger"] = json.dumps({"toast": "Memory entry deleted."})
        return response
    messages.success(request, "Memory entry deleted.")
    return redirect(_back(_collection_param(request.POST.get("collection", ""))))


@require_POST
@member_required(role=Role.MEMBER)
def memory_bulk_delete(request):
    """The checked entries, wherever they are: the API's delete, once per collection they are in."""
    tenant = request.principal.tenant
    back = _back(_collection_param(request.POST.get("collection", "")))
    ids = []
    for value in request.POST.getlist("entry_ids"):
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    if not ids:
        messages.error(request, "Tick the entries to delete first.")
        return redirect(back)
    by_collection: dict[str, list[uuid.UUID]] = {}
    for pk, name in selectors.memory_entry_list(tenant=tenant).filter(pk__in=ids).values_list("pk", "collection"):
        by_collection.setdefault(name, []).append(pk)
    deleted = sum(
        services.memory_entries_delete(tenant=tenant, collection=name, entry_ids=chunk)
        for name, chunk in by_collection.items()
    )
    messages.success(request, f"Deleted {deleted} memory {'entry' if deleted == 1 else 'entries'}.")
    return redirect(back)


@require_POST
@member_required(role=Role.ADMIN)
def memory_collection_clear(request):
    tenant = request.principal.tenant
    collection = _collection_param(request.POST.get("collection", ""))
    if not collection or not selectors.memory_collection_exists(tenant=tenant, collection=collection):
        raise Http404("No such collection.")
    deleted = services.memory_collection_clear(tenant=tenant, collection=collection)
    messages.success(request, f"Cleared “{collection}”: {deleted} {'entry' if deleted == 1 else 'entries'} deleted.")
    return redirect("dashboard:memory")
