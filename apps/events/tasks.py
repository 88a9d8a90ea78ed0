"""Periodic upkeep of the event log."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.events.services import event_log_trim

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def trim_event_log() -> int:
    """Delete events older than EVENT_RETENTION_HOURS (beat: `events.trim-log`, every 10 min).

    Idempotent: a redelivery deletes what is left, or nothing.
    """
    cutoff = timezone.now() - timedelta(hours=settings.EVENT_RETENTION_HOURS)
    deleted = event_log_trim(older_than=cutoff)
    if deleted:
        logger.info("event log: trimmed %d events older than %s", deleted, cutoff.isoformat())
    return deleted
