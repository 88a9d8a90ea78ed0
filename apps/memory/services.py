"""Every write to memory: entries by hand or by tool, what the agent loop records after a turn,
deletions, embedding (run by Celery) and expiry.

Writes never embed inline: the row is stored with `embedding = NULL` and `embed_entries` is
queued on commit, so an API write costs one INSERT. Embedding is idempotent: a row that already
carries a vector from the configured model is skipped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from apps.core.redaction import redact_data, redact_text
from apps.memory import text as memory_text
from apps.memory.embedders import Embedder, get_embedder
from apps.memory.models import DEFAULT_COLLECTIONS, EMBEDDED_KINDS, NAME_RE, MemoryEntry, MemoryKind, needs_embedding

logger = logging.getLogger(__name__)

CONTENT_MAX_CHARS = 20000
KEYWORDS_MAX = 32
DELETE_MAX_IDS = 1000


# --- validation -------------------------------------------------------------------------------------


def _check_name(value: str, field: str) -> str:
    if value and not NAME_RE.match(value):
        raise ValidationError({field: ["Use 1-64 letters, digits, '_' or '-'."]})
    return value


def _clean_keywords(keywords: Iterable[Any] | None) -> list[str]:
    if keywords is None:
        return []
    if isinstance(keywords, str) or not all(isinstance(k, str) for k in keywords):
        raise ValidationError({"keywords": ["A list of strings."]})
    cleaned: list[str] = []
    seen: set[str] = set()
    for keyword in keywords:
        keyword = " ".join(keyword.split())[:100]
        if keyword and keyword.lower() not in seen:
            seen.add(keyword.lower())
            cleaned.append(keyword)
    return cleaned[:KEYWORDS_MAX]


def _build_entry(
    *,
    tenant=None,
    tenant_id=None,
    content: str,
    kind: str,
    collection: str = "",
    category: str = "",
    summary: str = "",
    keywords: Iterable[str] | None = None,
    topic: str = "",
    importance: float = 0.5,
    metadata: dict | None = None,
    agent=None,
    agent_id=None,
    session_id=None,
    turn_id=None,
    expires_at: datetime | None = None,
    source_key: str = "",
) -> MemoryEntry:
    """An unsaved entry, validated and redacted. Session and turn come as ids: memory never loads
    them (they belong to conversations, above memory); whoever passes one has checked that the
    tenant owns it (the API views through apps.core.chat_sessions, the agent loop by running the
    turn)."""
    if kind not in MemoryKind.values:
        raise ValidationError({"kind": [f"One of {', '.join(MemoryKind.values)}."]})
    content = (content or "").strip()
    if not content:
        raise ValidationError({"content": ["This field may not be blank."]})
    if len(content) > CONTENT_MAX_CHARS:
        raise ValidationError({"content": [f"At most {CONTENT_MAX_CHARS} characters."]})
    if not 0.0 <= float(importance) <= 1.0:
        raise ValidationError({"importance": ["Between 0 and 1."]})
    # Objects when the caller has them (the API answers with the agent's name), ids otherwise.
    owners = {"tenant": tenant} if tenant is not None else {"tenant_id": tenant_id}
    if agent is not None:
        if agent.tenant_id != (tenant.pk if tenant is not None else tenant_id):
            raise ValidationError({"agent": ["No such agent."]})
        owners["agent"] = agent
    else:
        owners["agent_id"] = agent_id
    if kind == MemoryKind.WORKING and session_id is None:
        raise ValidationError({"session_id": ["Working memory belongs to a session."]})
    if kind == MemoryKind.WORKING and expires_at is None:
        expires_at = timezone.now() + timedelta(seconds=settings.WORKING_MEMORY_TTL)
    # Memory is recalled into later prompts and shown in the API: a secret stored here would leak
    # far from where it was said. Redacted on the way in, for every writer (API, tool, turn).
    content = redact_text(content)
    words = [redact_text(word) for word in _clean_keywords(keywords)]
    return MemoryEntry(
        **owners,
        session_id=session_id,
        turn_id=turn_id,
        kind=kind,
        collection=_check_name(collection, "collection") or DEFAULT_COLLECTIONS[kind],
        category=_check_name(category, "category"),
        content=content,
        summary=redact_text((summary or "").strip()),
        keywords=words,
        keywords_text=" ".join(words),
        topic=redact_text((topic or "").strip()[:200]),
        importance=float(importance),
        metadata=redact_data(metadata or {}),
        expires_at=expires_at,
        source_key=source_key,
    )


def _embed_on_commit(entry_ids: list) -> None:
    from apps.memory.tasks import embed_entries

    ids = [str(entry_id) for entry_id in entry_ids]
    if ids:
        transaction.on_commit(lambda: embed_entries.delay(ids))


# --- writes -----------------------------------------------------------------------------------------


def memory_entry_create(*, tenant, content: str, kind: str = MemoryKind.SEMANTIC, **fields: Any) -> MemoryEntry:
    """One entry (the API's "add by hand", the `remember` tool); embedded in the background."""
    entry = _build_entry(tenant=tenant, content=content, kind=kind, **fields)
    with transaction.atomic():
        entry.save(force_insert=True)
        if entry.is_embeddable:
            _embed_on_commit([entry.pk])
    return entry


def memory_fact_remember(
    *, tenant, agent, fact: str, category: str = "", session_id=None, turn_id=None
) -> tuple[MemoryEntry, bool]:
    """A semantic fact for `agent`; the same fact in the same category is stored once.
    Returns (entry, created). The fact is redacted first, so a fact stored redacted is found again."""
    fact = redact_text(" ".join((fact or "").split()))
    existing = (
        MemoryEntry.objects.filter(
            tenant=tenant, agent=agent, kind=MemoryKind.SEMANTIC, category=category, content__iexact=fact
        )
        .defer("embedding", "search_vector")
        .first()
    )
    if existing is not None:
        return existing, False
    words = memory_text.keywords(fact)
    entry = memory_entry_create(
        tenant=tenant,
        content=fact,
        kind=MemoryKind.SEMANTIC,
        category=category,
        keywords=words,
        topic=category or memory_text.topic(words),
        importance=0.7,
        agent=agent,
        session_id=session_id,
        turn_id=turn_id,
        metadata={"source": "remember"},
    )
    return entry, True


def memory_record_exchange(
    *,
    tenant_id,
    agent_id,
    session_id,
    turn_id,
    user_text: str,
    answer_text: str,
    model: str = "",
    tool_call_count: int = 0,
) -> None:
    """After a completed turn: an episodic entry summarising the exchange (keywords, topic,
    importance) and working-memory items for the session.

    Takes ids and texts, never the turn: the agent loop (apps.conversations.memory_hooks) reads
    the turn and calls this. Idempotent per turn (source keys are unique per tenant); embedding
    is queued for when the transaction commits. Never raises: the turn is already answered, and
    a memory failure is logged rather than turned into a failed turn."""
    try:
        _record_exchange(
            tenant_id=tenant_id,
            agent_id=agent_id,
            session_id=session_id,
            turn_id=turn_id,
            user_text=user_text or "",
            answer_text=answer_text or "",
            model=model or "",
            tool_call_count=tool_call_count or 0,
        )
    except Exception:
        logger.exception("turn %s: recording its memory failed", turn_id)


def _record_exchange(
    *, tenant_id, agent_id, session_id, turn_id, user_text: str, answer_text: str, model: str, tool_call_count: int
) -> None:
    key = f"turn:{turn_id}"
    if MemoryEntry.objects.filter(tenant_id=tenant_id, source_key=f"{key}:episodic").exists():
        return
    if not user_text.strip() and not answer_text.strip():
        return
    words = memory_text.exchange_keywords(user_text, answer_text)
    common = {"tenant_id": tenant_id, "agent_id": agent_id, "session_id": session_id, "turn_id": turn_id}
    meta = {"turn_id": str(turn_id), "model": model}
    entries = [
        _build_entry(
            **common,
            kind=MemoryKind.EPISODIC,
            content=memory_text.exchange_content(user_text, answer_text),
            summary=memory_text.exchange_summary(user_text, answer_text),
            keywords=words,
            topic=memory_text.topic(words),
            importance=memory_text.importance(user_text, tool_calls=tool_call_count),
            metadata=meta,
            source_key=f"{key}:episodic",
        )
    ]
    for role, text in (("user", user_text), ("assistant", answer_text)):
        if text.strip():
            entries.append(
                _build_entry(
                    **common,
                    kind=MemoryKind.WORKING,
                    content=memory_text.clip(text, memory_text.CONTENT_MAX_CHARS),
                    summary=f"{role}: {memory_text.clip(text, 200)}",
                    importance=0.3,
                    metadata={**meta, "role": role},
                    source_key=f"{key}:working:{role}",
                )
            )
    try:
        with transaction.atomic():
            MemoryEntry.objects.bulk_create(entries)
            _trim_working_memory(tenant_id=tenant_id, session_id=session_id)
            _embed_on_commit([entry.pk for entry in entries if entry.is_embeddable])
    except IntegrityError:
        # The same turn recorded at the same moment by another worker (a redelivered task).
        logger.info("turn %s: memory already recorded", turn_id)


def _trim_working_memory(*, tenant_id, session_id) -> None:
    keep = settings.WORKING_MEMORY_MAX_ITEMS
    stale = (
        MemoryEntry.objects.filter(tenant_id=tenant_id, session_id=session_id, kind=MemoryKind.WORKING)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[keep:]
    )
    MemoryEntry.objects.filter(pk__in=list(stale)).delete()


def memory_entry_delete(*, tenant, collection: str, entry_id: uuid.UUID) -> bool:
    deleted, _ = MemoryEntry.objects.filter(tenant=tenant, collection=collection, pk=entry_id).delete()
    return bool(deleted)


def memory_entries_delete(*, tenant, collection: str, entry_ids: list[uuid.UUID]) -> int:
    if len(entry_ids) > DELETE_MAX_IDS:
        raise ValidationError({"entry_ids": [f"At most {DELETE_MAX_IDS} ids per request."]})
    deleted, _ = MemoryEntry.objects.filter(tenant=tenant, collection=collection, pk__in=entry_ids).delete()
    return deleted


def memory_collection_clear(*, tenant, collection: str) -> int:
    deleted, _ = MemoryEntry.objects.filter(tenant=tenant, collection=collection).delete()
    return deleted


# --- embedding ------------------------------------------------------------------------------------


def memory_entries_embed(*, entry_ids: Iterable, embedder: Embedder | None = None) -> int:
    """Embed the given entries that lack a vector from `embedder` (default: the configured one);
    working memory is never embedded (models.EMBEDDED_KINDS says why).

    Idempotent and safe to run twice at once: rows already embedded by this model are skipped,
    and rows another worker is embedding right now are skipped too (SKIP LOCKED). Returns how
    many rows this call embedded."""
    embedder = embedder or get_embedder()
    ids = list(entry_ids)
    if not ids:
        return 0
    if hasattr(embedder, "load"):
        embedder.load()  # a first-use model load must not happen while rows are locked
    done = 0
    batch_size = max(1, settings.EMBEDDING_BATCH_SIZE)
    for start in range(0, len(ids), batch_size):
        with transaction.atomic():
            rows = list(
                MemoryEntry.objects.select_for_update(skip_locked=True)
                .filter(pk__in=ids[start : start + batch_size])
                .filter(needs_embedding(embedder.name))
                .only("id", "topic", "summary", "content")
                .order_by()
            )
            if not rows:
                continue
            vectors = embedder.embed([row.embedding_text for row in rows])
            for row, vector in zip(rows, vectors, strict=True):
                row.embedding, row.embedding_model = vector, embedder.name
            MemoryEntry.objects.bulk_update(rows, ["embedding", "embedding_model"])
            done += len(rows)
    return done


def memory_pending_ids(*, limit: int = 500, older_than_seconds: int = 30) -> list[uuid.UUID]:
    """Rows still waiting for a vector some time after they were written (their task was lost)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        MemoryEntry.objects.filter(embedding__isnull=True, kind__in=EMBEDDED_KINDS, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )


def memory_purge_expired(*, now: datetime | None = None) -> int:
    """Working memory ends with its session (deleted: session is NULL) or at expires_at."""
    now = now or timezone.now()
    expired = Q(expires_at__lte=now) | Q(kind=MemoryKind.WORKING, session__isnull=True)
    deleted, _ = MemoryEntry.objects.filter(expired).delete()
    return deleted
