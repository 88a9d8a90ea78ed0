"""Long-term memory: one table of entries, searched by meaning (pgvector) and by words (full text).

The vector column is as wide as EMBEDDING_DIMENSIONS and is filled by a Celery task after the
row is written (`embedding` stays NULL until then); `embedding_model` names the model that made
it, so rows from another model are never compared with a query from this one. `search_vector`
is a generated column: PostgreSQL keeps it in step with the text, nothing in Python writes it.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q
from pgvector.django import VectorField

from apps.core.models import TenantOwnedModel
from apps.memory.indexes import HalfvecHnswIndex

# Collection and category names appear in URL paths, so they follow the path-id format.
NAME_PATTERN = r"[a-zA-Z0-9_-]{1,64}"
NAME_RE = re.compile(rf"^{NAME_PATTERN}$")
# The text search configuration of the generated column (stemming: "started" finds "start").
TEXT_SEARCH_CONFIG = "english"


class MemoryKind(models.TextChoices):
    WORKING = "working", "Working (one session, expires)"
    EPISODIC = "episodic", "Episodic (what happened in a turn)"
    SEMANTIC = "semantic", "Semantic (facts)"


# Each kind has a collection of its own name unless the writer picks another.
DEFAULT_COLLECTIONS = {kind.value: kind.value for kind in MemoryKind}
# Working memory is not embedded: it lives for hours, is read by session rather than by meaning,
# and is two of the three rows every turn writes; embedding and indexing it would triple the
# model time and the HNSW churn (inserts, then deletes to vacuum) for nothing the loop uses.
EMBEDDED_KINDS = (MemoryKind.EPISODIC.value, MemoryKind.SEMANTIC.value)


def needs_embedding(model_name: str) -> Q:
    """Rows that should carry a vector from `model_name` and do not."""
    return Q(kind__in=EMBEDDED_KINDS) & (Q(embedding__isnull=True) | ~Q(embedding_model=model_name))


def _search_vector() -> SearchVector:
    def weighted(expression, weight: str) -> SearchVector:
        return SearchVector(expression, config=TEXT_SEARCH_CONFIG, weight=weight)

    return (
        weighted("topic", "A")
        + weighted("category", "A")
        + weighted("keywords_text", "A")
        + weighted("summary", "B")
        + weighted("content", "C")
    )


class MemoryEntry(TenantOwnedModel):
    agent = models.ForeignKey(
        "agents.Agent",
        null=True,
        blank=True,
        on_delete=models.CASCADE,  # an agent's own memories go with it; tenant-wide ones have none
        related_name="+",
        help_text="Empty: tenant-wide memory every agent of the tenant recalls.",
    )
    session = models.ForeignKey(
        "conversations.ChatSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # memory_session_kind leads with it
    )
    turn = models.ForeignKey(
        "conversations.Turn",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The turn that wrote this entry, for entries the agent loop records.",
    )
    kind = models.CharField(max_length=16, choices=MemoryKind.choices)
    collection = models.CharField(max_length=64)
    category = models.CharField(max_length=64, blank=True, help_text="For semantic facts, e.g. preferences.")
    content = models.TextField()
    summary = models.TextField(blank=True)
    keywords = models.JSONField(default=list, blank=True)
    # The keywords as one string, for the generated full-text column (a JSON array is not text).
    keywords_text = models.TextField(blank=True, editable=False)
    topic = models.CharField(max_length=200, blank=True)
    importance = models.FloatField(default=0.5)
    metadata = models.JSONField(default=dict, blank=True)
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=200, blank=True, editable=False)
    search_vector = models.GeneratedField(
        expression=_search_vector(), output_field=SearchVectorField(), db_persist=True
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    # Makes writes that may be repeated (a turn recorded twice) land once: unique per tenant when set.
    source_key = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "memory entries"
        constraints = [
            models.CheckConstraint(
                condition=Q(importance__gte=0) & Q(importance__lte=1), name="memory_importance_0_to_1"
            ),
            models.CheckConstraint(condition=Q(kind__in=MemoryKind.values), name="memory_kind_valid"),
            models.UniqueConstraint(
                fields=["tenant", "source_key"], condition=~Q(source_key=""), name="memory_unique_source_key"
            ),
        ]
        indexes = [
            # Cosine HNSW over every tenant's rows, on the vectors cast to half precision: half
            # the index size and faster scans for a recall loss too small to measure (rows keep
            # full precision for exact scans and re-ranking). docs/memory.md: m, ef_construction.
            HalfvecHnswIndex(
                field="embedding",
                dimensions=settings.EMBEDDING_DIMENSIONS,
                name="memory_embedding_hnsw",
                m=settings.MEMORY_HNSW_M,
                ef_construction=settings.MEMORY_HNSW_EF_CONSTRUCTION,
            ),
            GinIndex(fields=["search_vector"], name="memory_search_vector_gin"),
            # Listing and the cheap "how many rows does this filter match" count of the search.
            models.Index(fields=["tenant", "kind", "-created_at"], name="memory_tenant_kind_recent"),
            models.Index(fields=["tenant", "collection", "-created_at"], name="memory_tenant_coll_recent"),
            models.Index(fields=["tenant", "agent"], name="memory_tenant_agent"),
            models.Index(fields=["tenant", "category"], name="memory_tenant_category", condition=~Q(category="")),
            models.Index(fields=["session", "kind"], name="memory_session_kind"),
            # The queue of rows waiting for an embedding (small: rows leave it within seconds).
            models.Index(
                fields=["created_at"],
                name="memory_pending_embedding",
                condition=Q(embedding__isnull=True) & ~Q(kind="working"),
            ),
            models.Index(fields=["expires_at"], name="memory_expiring", condition=Q(expires_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.collection}: {(self.summary or self.content)[:60]}"

    @property
    def is_embedded(self) -> bool:
        return self.embedding is not None

    @property
    def is_embeddable(self) -> bool:
        return self.kind in EMBEDDED_KINDS

    @property
    def embedding_text(self) -> str:
        """What the embedder reads: the topic and the summary when there is one (an episode's
        summary leads with what the user said), else the content; capped, and the models
        truncate to their own window anyway (all-MiniLM-L6-v2 reads 256 tokens).

        Not the whole exchange: a local model's time grows with the text (on the reference
        machine, one thread: 79 ms for a full 256-token window, 44 ms for a 123-token summary), it
        runs once per turn on the workers, and the exchange's every word is still found by the
        keyword half of hybrid search."""
        parts = [self.topic, self.summary] if (self.summary or "").strip() else [self.topic, self.content]
        seen: list[str] = []
        for part in parts:
            part = (part or "").strip()
            if part and not any(part in other for other in seen):
                seen.append(part)
        return "\n".join(seen)[:4000]
