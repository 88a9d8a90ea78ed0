"""The figures in system_status: Celery workers, broker queue depth, active turns per tenant.

Synchronous (Redis, the broker, the ORM); the web process calls `snapshot()` from a thread
every SYSTEM_STATUS_SECONDS for the tenants that have someone listening.
"""

from __future__ import annotations

import logging
from functools import cache as memoize

import redis
from django.conf import settings
from django.core.cache import cache

from apps.core.chat_sessions import active_turn_counts

logger = logging.getLogger(__name__)

WORKERS_CACHE_KEY = "events:status:workers"
# A ping waits its whole timeout for replies (the number of workers is what it finds out), so
# one web process pings at most this often and every process reads the cached count.
WORKERS_CACHE_SECONDS = 15
PING_TIMEOUT_SECONDS = 1.0
# kombu's Redis transport keeps a queue's priority levels in lists named queue + sep + level.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


@memoize
def _broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)


def queue_depth() -> int | None:
    """Tasks waiting in the default Celery queue (LLEN of its Redis lists); None if unknown."""
    from celery import current_app as app  # the project's app (agentplatform/celery.py): events may not import it

    queue = app.conf.task_default_queue or "celery"
    try:
        pipe = _broker().pipeline(transaction=False)
        for name in (queue, *(f"{queue}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS)):
            pipe.llen(name)
        return sum(pipe.execute())
    except redis.RedisError as exc:
        logger.warning("system_status: queue depth unavailable: %s", exc)
        return None


def worker_count() -> int | None:
    """Celery workers answering a ping, cached for WORKERS_CACHE_SECONDS; None if unknown."""
    try:
        cached = cache.get(WORKERS_CACHE_KEY)
        if cached is not None:
            return cached
        if not cache.add(f"{WORKERS_CACHE_KEY}:lock", 1, timeout=int(PING_TIMEOUT_SECONDS) + 4):
            return None  # another process is pinging right now
    except Exception as exc:  # noqa: BLE001 - Redis down: say unknown, never fail the status
        logger.warning("system_status: worker count unavailable: %s", exc)
        return None
    from celery import current_app as app

    try:
        count = len(app.control.ping(timeout=PING_TIMEOUT_SECONDS) or [])
    except Exception as exc:  # noqa: BLE001
        logger.warning("system_status: worker ping failed: %s", exc)
        return None
    cache.set(WORKERS_CACHE_KEY, count, WORKERS_CACHE_SECONDS)
    return count


def snapshot(tenant_ids) -> dict[str, dict]:
    """system_status data for each tenant: shared figures plus the tenant's own active turns."""
    workers, depth = worker_count(), queue_depth()
    return {
        tenant_id: {"workers": workers, "queue_depth": depth, "active_turns": active}
        for tenant_id, active in active_turn_counts(tenant_ids=tenant_ids).items()
    }
