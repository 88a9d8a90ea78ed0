"""Thin Celery tasks: take ids, call one service, safe to deliver twice."""

from __future__ import annotations

from celery import shared_task

from apps.memory import services
from apps.memory.embedders import EmbeddingError


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(EmbeddingError,),  # an embeddings endpoint that is down; the model itself is not retried
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
    ignore_result=True,
)
def embed_entries(entry_ids: list[str]) -> int:
    """Embed these entries in batches; rows already embedded by the configured model are skipped."""
    return services.memory_entries_embed(entry_ids=entry_ids)


@shared_task(ignore_result=True)
def embed_pending() -> int:
    """Beat: rows whose embedding task was lost (a worker died, Redis was flushed)."""
    return services.memory_entries_embed(entry_ids=services.memory_pending_ids())


@shared_task(ignore_result=True)
def purge_expired() -> int:
    """Beat: working memory past its TTL or whose session is gone."""
    return services.memory_purge_expired()
