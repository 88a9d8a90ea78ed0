"""Search over one tenant's memory: vector k-NN, full text, and both fused (reciprocal rank fusion).

Every query is filtered by tenant (and optionally agent, session, kinds, collection, category),
so the vector search is a *filtered* k-NN, and HNSW alone loses recall on filters: the index
yields the `ef_search` nearest rows of the whole table and the filter then drops every other
tenant's. Two measures keep the recall for every tenant size (docs/memory.md has the figures):

- a filter that provably matches at most MEMORY_EXACT_SCAN_MAX_ROWS rows is searched exactly:
  ordered by the full-precision distance, which no index serves, PostgreSQL reads those rows
  through B-tree indexes and sorts them. "Provably": a count on one B-tree index, bounded at the
  threshold and kept for a minute (`count_bound`);
- a bigger one uses the HNSW index with pgvector's iterative scan
  (`hnsw.iterative_scan = relaxed_order`): when the filter leaves fewer than k rows of the first
  `ef_search` candidates, the scan goes on into the graph, up to `hnsw.max_scan_tuples`. Relaxed
  order may return rows slightly out of order, so they are re-sorted by exact distance here. If
  the scan ends with fewer than k rows, the filter was selective after all and an exact scan
  answers instead.

The index holds the vectors in half precision (models.py); distances returned are recomputed at
full precision from the rows.

Scores: vector mode gives the cosine similarity (1 - distance), keyword mode PostgreSQL's
`ts_rank_cd` normalised to 0..1, hybrid mode the fused score sum(1 / (MEMORY_RRF_K + rank)) over
the two lists. `match_type` says which list(s) found the entry.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from apps.memory.embedders import Embedder, get_embedder
from apps.memory.models import TEXT_SEARCH_CONFIG, MemoryEntry

logger = logging.getLogger(__name__)

MODES = ("hybrid", "vector", "keyword")
MATCH_TYPES = ("vector", "keyword", "hybrid")
K_MAX = 100
COUNT_CACHE_SECONDS = 60
KEYWORD_CANDIDATES = 2000
TABLE = MemoryEntry._meta.db_table


@dataclass(frozen=True)
class MemoryFilter:
    """Which of a tenant's entries a search may return.

    `agent_id` given: that agent's entries and the tenant-wide ones (no agent), which is what an
    agent recalls; `agent_only` drops the tenant-wide ones."""

    tenant_id: uuid.UUID
    agent_id: uuid.UUID | None = None
    agent_only: bool = False
    session_id: uuid.UUID | None = None
    kinds: tuple[str, ...] = ()
    collection: str = ""
    category: str = ""
    exclude_ids: tuple[uuid.UUID, ...] = ()
    # Leave out this session's latest `recent_count` episodic entries, found by the search's own
    # statement (a subquery) rather than by a query of their own before it.
    exclude_recent_of_session: uuid.UUID | None = None
    recent_count: int = 0

    def sql(self, *, now: datetime) -> tuple[str, list]:
        clauses = ["tenant_id = %s", "(expires_at IS NULL OR expires_at > %s)"]
        params: list = [self.tenant_id, now]
        if self.agent_id is not None:
            clauses.append("agent_id = %s" if self.agent_only else "(agent_id = %s OR agent_id IS NULL)")
            params.append(self.agent_id)
        if self.session_id is not None:
            clauses.append("session_id = %s")
            params.append(self.session_id)
        if self.kinds:
            clauses.append("kind = ANY(%s)")
            params.append(list(self.kinds))
        if self.collection:
            clauses.append("collection = %s")
            params.append(self.collection)
        if self.category:
            clauses.append("category = %s")
            params.append(self.category)
        if self.exclude_ids:
            clauses.append("NOT (id = ANY(%s))")
            params.append(list(self.exclude_ids))
        if self.exclude_recent_of_session is not None and self.recent_count > 0:
            clauses.append(
                f"NOT (id = ANY(ARRAY(SELECT id FROM {TABLE} WHERE tenant_id = %s AND session_id = %s "  # noqa: S608
                "AND kind = 'episodic' ORDER BY created_at DESC LIMIT %s)))"
            )
            params += [self.tenant_id, self.exclude_recent_of_session, self.recent_count]
        return " AND ".join(clauses), params


@dataclass
class SearchHit:
    entry_id: uuid.UUID
    score: float
    match_type: str  # vector | keyword | hybrid
    similarity: float | None = None  # cosine similarity when the vector search found it
    keyword_rank: float | None = None
    entry: MemoryEntry | None = field(default=None, repr=False)


@dataclass(frozen=True)
class VectorPlan:
    """How a vector search ran, for tests and the benchmark."""

    strategy: str  # exact | hnsw | hnsw+exact (HNSW ran out of candidates, then exact)
    rows: int  # the bounded count that chose it (threshold + 1 means "more")


# --- the query embedding ---------------------------------------------------------------------------


def embed_query(text: str, *, embedder: Embedder | None = None) -> list[float]:
    """The query's vector, from Redis when this text was embedded by this model before."""
    embedder = embedder or get_embedder()
    digest = hashlib.sha256(text.encode()).hexdigest()
    key = f"memory:qvec:{embedder.name}:{embedder.dimensions}:{digest}"
    cached = _cache_get(key)
    if isinstance(cached, bytes) and len(cached) == 4 * embedder.dimensions:
        return np.frombuffer(cached, dtype=np.float32).tolist()
    vector = embedder.embed([text])[0]
    _cache_set(key, np.asarray(vector, dtype=np.float32).tobytes(), settings.EMBEDDING_QUERY_CACHE_SECONDS)
    return vector


def _cache_get(key: str):
    try:
        return cache.get(key)
    except Exception:  # a Redis hiccup costs a recomputation, never the search
        logger.warning("memory cache read failed", exc_info=True)
        return None


def _cache_set(key: str, value, timeout: int) -> None:
    try:
        cache.set(key, value, timeout)
    except Exception:
        logger.warning("memory cache write failed", exc_info=True)


def vector_literal(vector: Iterable[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


# --- vector k-NN ------------------------------------------------------------------------------------


_counts: dict[tuple, tuple[int, float]] = {}
_COUNTS_MAX = 10000


def clear_count_cache() -> None:
    _counts.clear()


def count_bound(filters: MemoryFilter, *, limit: int) -> int:
    """An upper bound of how many rows the filter matches, counted up to `limit` + 1 (so its cost is
    bounded) on one B-tree index alone (an index-only scan), kept for a minute in this process.

    The index is that of the most selective indexed filter present (session, category, collection,
    kinds, else the tenant); the other filters are left out, which can only make the count bigger.
    So a bound under the threshold proves the exact scan is cheap. The cache is per process (no
    Redis round trip on the hot path); a stale count only picks the slower correct strategy. A
    count of zero is never cached, so a tenant's first memories are found by meaning at once."""
    if filters.session_id is not None:
        where, params = "session_id = %s", [filters.session_id]
    elif filters.category:
        where, params = "tenant_id = %s AND category = %s", [filters.tenant_id, filters.category]
    elif filters.collection:
        where, params = "tenant_id = %s AND collection = %s", [filters.tenant_id, filters.collection]
    elif filters.kinds:
        where, params = "tenant_id = %s AND kind = ANY(%s)", [filters.tenant_id, sorted(filters.kinds)]
    else:
        where, params = "tenant_id = %s", [filters.tenant_id]
    key = (where, *map(str, params), limit)
    now = time.monotonic()
    cached = _counts.get(key)
    if cached is not None and cached[1] > now:
        return cached[0]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} WHERE {where} LIMIT %s) AS bounded",  # noqa: S608 - ours
            [*params, limit + 1],
        )
        rows = cursor.fetchone()[0]
    if rows:  # "none yet" is not kept: a first memory must be searchable at once (the count is cheap)
        if len(_counts) >= _COUNTS_MAX:
            _counts.clear()
        _counts[key] = (rows, now + COUNT_CACHE_SECONDS)
    return rows


def _exact(filters: MemoryFilter, literal: str, *, k: int, embedding_model: str) -> list:
    # Ordering by the full-precision distance matches no index (the HNSW index is on the
    # half-precision cast), so PostgreSQL reads the filter's rows through B-tree indexes and sorts
    # them: an exact top k.
    where, params = filters.sql(now=timezone.now())
    sql = (
        f"SELECT id, embedding <=> %s::vector AS distance FROM {TABLE} "  # noqa: S608 - clauses are ours
        f"WHERE {where} AND embedding_model = %s AND embedding IS NOT NULL "
        "ORDER BY embedding <=> %s::vector LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [literal, *params, embedding_model, literal, k])
        return cursor.fetchall()


def _hnsw_settings(cursor, *, k: int) -> None:
    """ef_search, iterative scan and its limit for this connection.

    Outside a transaction they are set for the session, once per database connection (pooled
    connections keep them; only HNSW scans read them, and only memory runs those), which saves
    three round trips per search. Inside a caller's transaction they are set LOCAL every time: a
    session SET there would be undone by a rollback."""
    values = {
        "hnsw.ef_search": str(min(max(settings.MEMORY_HNSW_EF_SEARCH, k), 1000)),
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.max_scan_tuples": str(settings.MEMORY_HNSW_MAX_SCAN_TUPLES),
    }
    local = connection.in_atomic_block
    raw = connection.connection
    signature = tuple(values.items())
    if not local and getattr(raw, "_memory_hnsw_settings", None) == signature:
        return
    assignments = ", ".join(f"set_config(%s, %s, {'true' if local else 'false'})" for _ in values)
    cursor.execute(f"SELECT {assignments}", [item for pair in values.items() for item in pair])
    if not local:
        raw._memory_hnsw_settings = signature


def _hnsw(filters: MemoryFilter, literal: str, *, k: int, embedding_model: str) -> list:
    # The ORDER BY matches the index expression (half precision); the distance returned is
    # recomputed at full precision from the row, and the caller re-sorts by it.
    dims = int(settings.EMBEDDING_DIMENSIONS)
    where, params = filters.sql(now=timezone.now())
    sql = (
        f"SELECT id, embedding <=> %s::vector AS distance FROM {TABLE} "  # noqa: S608 - clauses are ours
        f"WHERE {where} AND embedding_model = %s "
        f"ORDER BY embedding::halfvec({dims}) <=> %s::halfvec({dims}) LIMIT %s"
    )
    with connection.cursor() as cursor:
        _hnsw_settings(cursor, k=k)
        cursor.execute(sql, [literal, *params, embedding_model, literal, k])
        return cursor.fetchall()


def vector_search(
    filters: MemoryFilter, query_vector: list[float], *, k: int, embedding_model: str
) -> tuple[list[tuple[uuid.UUID, float]], VectorPlan]:
    """The k nearest entries by cosine distance: [(id, distance)], nearest first.

    Exact when the filter provably matches few rows; otherwise HNSW with an iterative scan, and
    exact after all if that scan ran out (`hnsw.max_scan_tuples`) with fewer than k rows: the
    filter is then selective in a way the count could not see, and its rows are few."""
    threshold = settings.MEMORY_EXACT_SCAN_MAX_ROWS
    rows = count_bound(filters, limit=threshold)
    if rows == 0:
        return [], VectorPlan("exact", 0)
    literal = vector_literal(query_vector)
    strategy = "exact" if rows <= threshold else "hnsw"
    if strategy == "exact":
        found = _exact(filters, literal, k=k, embedding_model=embedding_model)
    else:
        found = _hnsw(filters, literal, k=k, embedding_model=embedding_model)
        if len(found) < k:
            strategy = "hnsw+exact"
            found = _exact(filters, literal, k=k, embedding_model=embedding_model)
    found.sort(key=lambda row: row[1])  # relaxed order: nearly sorted, made exact
    return [(row[0], float(row[1])) for row in found], VectorPlan(strategy, rows)


# --- full text -------------------------------------------------------------------------------------


def keyword_search(filters: MemoryFilter, query: str, *, k: int) -> list[tuple[uuid.UUID, float]]:
    """Entries sharing words with the query (stemmed), best `ts_rank_cd` first.

    Entries with all the words come first; when they are fewer than k, entries with any of them
    fill up (plainto_tsquery alone would AND the words, so a question like "what is my dog
    called" would need all of them). Ranking costs a read of every matching row, so each pass
    ranks at most KEYWORD_CANDIDATES of them: a very common word in a big tenant stays fast, at
    the price of ranking a sample of its matches."""
    found = _keyword_pass(filters, query, k=k, any_word=False, exclude=())
    if len(found) < k:
        found += _keyword_pass(filters, query, k=k - len(found), any_word=True, exclude=tuple(i for i, _ in found))
    return found


def _keyword_pass(
    filters: MemoryFilter, query: str, *, k: int, any_word: bool, exclude: tuple
) -> list[tuple[uuid.UUID, float]]:
    where, params = filters.sql(now=timezone.now())
    tsquery = "plainto_tsquery(%s::regconfig, %s)"
    if any_word:
        tsquery = f"replace({tsquery}::text, ' & ', ' | ')::tsquery"
    if exclude:
        where += " AND NOT (id = ANY(%s))"
        params = [*params, list(exclude)]
    sql = (
        f"WITH q AS (SELECT {tsquery} AS query), "  # noqa: S608 - the clauses are ours, values are parameters
        f"matches AS (SELECT id, created_at, search_vector FROM {TABLE}, q "
        f"WHERE {where} AND search_vector @@ q.query LIMIT %s) "
        "SELECT id, ts_rank_cd(search_vector, q.query, 32) AS rank FROM matches, q "
        "ORDER BY rank DESC, created_at DESC LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [TEXT_SEARCH_CONFIG, query, *params, KEYWORD_CANDIDATES, k])
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


# --- fusion -----------------------------------------------------------------------------------------


def reciprocal_rank_fusion(
    vector_hits: list[tuple[uuid.UUID, float]], keyword_hits: list[tuple[uuid.UUID, float]], *, k_rrf: int
) -> list[SearchHit]:
    """score(d) = sum over the lists that found d of 1 / (k_rrf + rank), ranks from 1."""
    hits: dict[uuid.UUID, SearchHit] = {}
    for rank, (entry_id, distance) in enumerate(vector_hits, start=1):
        hits[entry_id] = SearchHit(entry_id, 1.0 / (k_rrf + rank), "vector", similarity=1.0 - distance)
    for rank, (entry_id, keyword_rank) in enumerate(keyword_hits, start=1):
        hit = hits.get(entry_id)
        if hit is None:
            hits[entry_id] = SearchHit(entry_id, 1.0 / (k_rrf + rank), "keyword", keyword_rank=keyword_rank)
        else:
            hit.score += 1.0 / (k_rrf + rank)
            hit.match_type, hit.keyword_rank = "hybrid", keyword_rank
    # Ties (same ranks in swapped lists) go to the closer vector.
    return sorted(hits.values(), key=lambda h: (-h.score, -(h.similarity if h.similarity is not None else -2.0)))


def search(
    filters: MemoryFilter,
    query: str,
    *,
    mode: str = "hybrid",
    k: int = 10,
    embedder: Embedder | None = None,
    with_entries: bool = True,
    timings: dict | None = None,
    query_vector: list[float] | None = None,
) -> list[SearchHit]:
    """The k best entries for `query` under `filters`, in `mode`. Entries are loaded (without
    their vectors) when `with_entries`. `timings`, when given, gets `embed_ms`: the time spent
    embedding the query (a model call; 0 when cached or not needed). `query_vector`: the query
    already embedded by `embed_query` with `embedder` (a caller that embedded it while doing
    something else, the turn's claim say), so it is not embedded again."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    k = max(1, min(int(k), K_MAX))
    query = (query or "").strip()
    if not query:
        return []
    # Each list is searched deeper than k so fusion can promote an entry that is good in both.
    depth = k if mode != "hybrid" else min(max(2 * k, 20), 2 * K_MAX)
    vector_hits: list[tuple[uuid.UUID, float]] = []
    keyword_hits: list[tuple[uuid.UUID, float]] = []
    # A tenant with no memory at all (the count is cached) costs no query embedding.
    if mode in ("vector", "hybrid") and count_bound(filters, limit=settings.MEMORY_EXACT_SCAN_MAX_ROWS):
        embedder = embedder or get_embedder()
        started = time.perf_counter()
        vector = query_vector if query_vector is not None else embed_query(query, embedder=embedder)
        if timings is not None:
            timings["embed_ms"] = (time.perf_counter() - started) * 1000
        vector_hits, _ = vector_search(filters, vector, k=depth, embedding_model=embedder.name)
    if mode in ("keyword", "hybrid"):
        keyword_hits = keyword_search(filters, query, k=depth)

    if mode == "vector":
        hits = [SearchHit(i, 1.0 - d, "vector", similarity=1.0 - d) for i, d in vector_hits]
    elif mode == "keyword":
        hits = [SearchHit(i, r, "keyword", keyword_rank=r) for i, r in keyword_hits]
    else:
        hits = reciprocal_rank_fusion(vector_hits, keyword_hits, k_rrf=settings.MEMORY_RRF_K)
    hits = hits[:k]
    if with_entries and hits:
        attach_entries(hits, tenant_id=filters.tenant_id)
    return hits


def attach_entries(hits: list[SearchHit], *, tenant_id: uuid.UUID) -> None:
    entries = (
        MemoryEntry.objects.filter(tenant_id=tenant_id, pk__in=[h.entry_id for h in hits])
        .select_related("agent")
        .defer("embedding", "search_vector")
    )
    by_id = {entry.pk: entry for entry in entries}
    for hit in hits:
        hit.entry = by_id.get(hit.entry_id)
    hits[:] = [hit for hit in hits if hit.entry is not None]  # deleted in between
