"""Reads of memory, always for one tenant: lists, collections, stats, search, and what a turn's
context recalls."""

from __future__ import annotations

import logging
import uuid

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.agents.tokens import estimate_tokens
from apps.memory import search as memory_search_engine
from apps.memory.embedders import describe_embedder
from apps.memory.models import EMBEDDED_KINDS, MemoryEntry, MemoryKind
from apps.memory.search import MemoryFilter, SearchHit

logger = logging.getLogger(__name__)

# Retrieved memories the context shows: long entries are cut to this many characters.
CONTEXT_ITEM_MAX_CHARS = 600
# A session's latest episodic entries are still in the turn's history window (20 messages).
RECENT_EXCHANGES_IN_HISTORY = 10


def _live(queryset: QuerySet[MemoryEntry]) -> QuerySet[MemoryEntry]:
    now = timezone.now()
    return queryset.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def memory_entry_list(
    *,
    tenant,
    kind: str | None = None,
    collection: str | None = None,
    category: str | None = None,
    session_id: uuid.UUID | None = None,
) -> QuerySet[MemoryEntry]:
    """Live entries, newest first, without their vectors."""
    entries = MemoryEntry.objects.filter(tenant=tenant).select_related("agent").defer("embedding", "search_vector")
    if kind:
        entries = entries.filter(kind=kind)
    if collection:
        entries = entries.filter(collection=collection)
    if category:
        entries = entries.filter(category=category)
    if session_id:
        entries = entries.filter(session_id=session_id)
    return _live(entries).order_by("-created_at", "-id")


def memory_collection_exists(*, tenant, collection: str) -> bool:
    return _live(MemoryEntry.objects.filter(tenant=tenant, collection=collection)).exists()


def memory_collections(*, tenant) -> list[dict]:
    rows = (
        _live(MemoryEntry.objects.filter(tenant=tenant))
        .values("collection", "kind")
        .annotate(count=Count("id"))
        .order_by("collection", "kind")
    )
    collections: dict[str, dict] = {}
    for row in rows:
        item = collections.setdefault(row["collection"], {"name": row["collection"], "count": 0, "kinds": []})
        item["count"] += row["count"]
        item["kinds"].append(row["kind"])
    return list(collections.values())


def memory_categories(*, tenant) -> list[dict]:
    rows = (
        _live(MemoryEntry.objects.filter(tenant=tenant, kind=MemoryKind.SEMANTIC))
        .exclude(category="")
        .values("category")
        .annotate(count=Count("id"))
        .order_by("category")
    )
    return [{"name": row["category"], "count": row["count"]} for row in rows]


def memory_stats(*, tenant) -> dict:
    live = _live(MemoryEntry.objects.filter(tenant=tenant))
    by_kind = dict.fromkeys(MemoryKind.values, 0)
    for row in live.values("kind").annotate(count=Count("id")):
        by_kind[row["kind"]] = row["count"]
    embedder = describe_embedder()
    totals = live.aggregate(
        pending=Count("id", filter=Q(embedding__isnull=True, kind__in=EMBEDDED_KINDS)),
        other_model=Count(
            "id", filter=Q(embedding__isnull=False, kind__in=EMBEDDED_KINDS) & ~Q(embedding_model=embedder["model"])
        ),
        collections=Count("collection", distinct=True),
        agents=Count("agent", distinct=True),
    )
    return {
        "total": sum(by_kind.values()),
        "by_kind": by_kind,
        "collections": totals["collections"],
        "agents": totals["agents"],
        "pending_embeddings": totals["pending"],
        "other_model_embeddings": totals["other_model"],
        "embedder": embedder,
    }


def working_memory(*, tenant, session_id: uuid.UUID | None = None, limit: int = 100) -> list[MemoryEntry]:
    return list(memory_entry_list(tenant=tenant, kind=MemoryKind.WORKING, session_id=session_id)[:limit])


# --- search -------------------------------------------------------------------------------------------


def memory_search(
    *,
    tenant,
    query: str,
    mode: str = "hybrid",
    k: int = 10,
    agent=None,
    agent_only: bool = False,
    session_id: uuid.UUID | None = None,
    kinds: tuple[str, ...] = (),
    collection: str = "",
    category: str = "",
) -> list[SearchHit]:
    """The k best of the tenant's entries for `query` (search.py explains modes and scores)."""
    filters = MemoryFilter(
        tenant_id=tenant.pk,
        agent_id=getattr(agent, "pk", None),
        agent_only=agent_only,
        session_id=session_id,
        kinds=tuple(kinds),
        collection=collection,
        category=category,
    )
    return memory_search_engine.search(filters, query, mode=mode, k=k)


def memory_for_context(
    *,
    tenant,
    agent,
    session,
    query_text: str,
    token_budget: int,
    timings: dict | None = None,
    query_vector: list[float] | None = None,
) -> list[dict]:
    """What a turn's context recalls: the most relevant episodic and semantic memories of the agent
    and of the tenant (tenant-wide entries), within `token_budget` estimated tokens.

    Hybrid search; an entry found only by the vector search must be at least
    MEMORY_CONTEXT_MIN_SIMILARITY similar (a nearest neighbour always exists, a relevant one may
    not). Importance breaks near-ties: the fused score is scaled by 0.8 + 0.4 * importance.
    Working memory is left out, and so are the session's own latest exchanges: the history window
    already shows them (RECENT_EXCHANGES_IN_HISTORY: conversations keeps 20 messages).
    Never raises: a memory failure must not fail the turn; it is logged and nothing is recalled.
    `query_vector`: `context_query_vector(query_text)` computed ahead (concurrently with other
    work), else the query is embedded here.
    """
    from django.conf import settings

    if token_budget <= 0 or not (query_text or "").strip():
        return []
    try:
        filters = MemoryFilter(
            tenant_id=tenant.pk,
            agent_id=getattr(agent, "pk", None),
            kinds=(MemoryKind.EPISODIC, MemoryKind.SEMANTIC),
            exclude_recent_of_session=getattr(session, "pk", session),
            recent_count=RECENT_EXCHANGES_IN_HISTORY,
        )
        k = max(settings.MEMORY_CONTEXT_MAX_ITEMS * 2, 10)
        hits = memory_search_engine.search(
            filters, query_text[:2000], mode="hybrid", k=k, timings=timings, query_vector=query_vector
        )
    except Exception:
        logger.exception("memory recall failed for tenant %s; the turn goes on without it", tenant.pk)
        return []
    threshold = settings.MEMORY_CONTEXT_MIN_SIMILARITY
    relevant = [h for h in hits if h.match_type != "vector" or (h.similarity or 0.0) >= threshold]
    relevant.sort(key=lambda h: -h.score * (0.8 + 0.4 * h.entry.importance))

    recalled, budget = [], token_budget
    for hit in relevant:
        if len(recalled) >= settings.MEMORY_CONTEXT_MAX_ITEMS:
            break
        item = context_item(hit)
        cost = estimate_tokens(item["text"])
        if cost > budget:
            continue  # a shorter one further down may still fit
        budget -= cost
        recalled.append(item)
    return recalled


def context_query_vector(query_text: str) -> list[float] | None:
    """The vector `memory_for_context` would embed for `query_text`, for a caller that wants it
    computed ahead, in a thread while it does its database work (the embedding runtimes release
    the GIL). None when there is nothing to embed or the embedding fails (recall then embeds
    again, or recalls nothing, as it would have)."""
    text = (query_text or "").strip()[:2000]
    if not text:
        return None
    try:
        return memory_search_engine.embed_query(text)
    except Exception:
        logger.exception("embedding the recall query ahead failed; recall will try again")
        return None


def context_item(hit: SearchHit) -> dict:
    entry = hit.entry
    text = entry.summary if entry.kind == MemoryKind.EPISODIC and entry.summary else entry.content
    if len(text) > CONTEXT_ITEM_MAX_CHARS:
        text = text[: CONTEXT_ITEM_MAX_CHARS - 1] + "…"
    return {
        "id": str(entry.pk),
        "kind": entry.kind,
        "collection": entry.collection,
        "category": entry.category,
        "content": entry.content[:CONTEXT_ITEM_MAX_CHARS],
        "summary": entry.summary,
        "text": text,  # what the system prompt shows
        "score": round(hit.score, 6),
        "similarity": None if hit.similarity is None else round(hit.similarity, 4),
        "matchType": hit.match_type,
        "importance": entry.importance,
        "created_at": entry.created_at.isoformat(),
    }


def format_for_prompt(items: list[dict]) -> str:
    """The system prompt's memory section for `memory_for_context`'s items ("" when none)."""
    if not items:
        return ""
    lines = ["Relevant memories (from earlier conversations and saved facts; may be outdated):"]
    for item in items:
        label = item["category"] or item["kind"]
        lines.append(f"- [{label}, {item['created_at'][:10]}] {item['text']}")
    return "\n".join(lines)
