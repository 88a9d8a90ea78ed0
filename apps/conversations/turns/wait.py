"""turn_wait: wait until a turn answers, parks or ends, woken by the live event push.

The synchronous faces (`/api/agent/message`, `/api/tasks`, later `/v1`, channels, schedules)
queue a turn and wait for the worker. A wait:

1. subscribes first: the process's hub (apps/events/live.py) joins the tenant's channel-layer
   group and proves the subscription with its barrier before anything is read, so a push can
   no longer fall between the read and the wait;
2. reads the turn once: a turn that finished (or parked) before the subscription is seen here;
3. sleeps on an asyncio.Event that the hub sets when one of the turn's terminal events arrives
   (chat_complete, turn_failed, turn_cancelled, approval_request), then reads the row once.
   Every TURN_WAIT_FALLBACK_SECONDS without a wake-up it reads anyway (the net under a push
   lost on the way: Redis restarted, a publisher's push queue full), and once more at the
   deadline. The worker writes the status and publishes the event in one transaction and the
   push leaves after the commit, so the read after a wake-up sees the new status.

No database connection is held while waiting. Each read runs through `db_call`: in the
caller's own thread (Django's thread-sensitive mode, the thread a sync view would have used, so
it sees what that thread sees, test transactions included), and the connection goes back to
the psycopg pool (DB_POOL_MAX_SIZE) right after, instead of at the end of the request. Django's
async ORM (`aget()`) would not do that: it runs in the same thread but keeps the connection
checked out until `request_finished`, i.e. for the whole wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connections

from apps.conversations.models import Turn
from apps.events import types as ev
from apps.events.live import hub

logger = logging.getLogger(__name__)

# The events after which a waiter looks at the turn again: it ended, or it parked.
WAKE_TYPES = frozenset({*ev.FINAL_TYPES, ev.APPROVAL_REQUEST})


def connections_release() -> None:
    """Hand this thread's database connections back (to the pool, or closed) as Django does at
    the end of a request; one inside a transaction (a caller's atomic block, a test's) is left
    alone, since closing it would end that transaction."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


def db_call(fn: Callable) -> Callable:
    """`fn` as a coroutine function: run in the caller's thread (thread-sensitive), and its
    connection released when it returns, so an await after it holds none."""

    @functools.wraps(fn)
    def released(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connections_release()

    return sync_to_async(released, thread_sensitive=True)


def _turn_read(tenant, turn_id) -> Turn:
    # The row and its answer in one query: everything the faces put in their reply.
    return Turn.objects.select_related("output_message").get(tenant=tenant, pk=turn_id)


def turn_is_settled(turn: Turn) -> bool:
    """Nothing more to wait for: the turn ended, or it waits for a person."""
    return turn.is_final or turn.status == Turn.Status.WAITING_APPROVAL


class _TurnWaiter:
    """One wait, as the hub sees it: woken by its turn's terminal events, nothing else."""

    ticks = False  # no system_status, no credential re-checks: it lives for one wait

    def __init__(self, tenant_id: str, turn_id: str) -> None:
        self.tenant_id = tenant_id
        self.turn_id = turn_id
        self.wake = asyncio.Event()

    def deliver(self, event: dict[str, Any], text: str, frame: Any = None) -> None:
        if event.get("turn_id") == self.turn_id and event.get("type") in WAKE_TYPES:
            self.wake.set()

    def on_status(self, envelope: dict[str, Any], text: str, frame: Any = None) -> None:
        return None

    def credentials(self) -> tuple[str | None, str | None]:
        return (None, None)

    async def revoke(self) -> None:
        self.wake.set()  # the tenant was suspended: its turns are being cancelled; look


async def turn_wait(*, tenant, turn_id: uuid.UUID | str, timeout: float) -> Turn:
    """The turn once it has ended or parked (`waiting_approval`), or as it is after `timeout`
    seconds (then still queued or running: the caller answers "still running").

    `tenant` scopes the read (another tenant's turn id raises Turn.DoesNotExist).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, timeout)
    fallback = max(0.05, settings.TURN_WAIT_FALLBACK_SECONDS)
    read = db_call(_turn_read)
    waiter = _TurnWaiter(str(getattr(tenant, "pk", tenant)), str(turn_id))
    local = hub()
    try:
        try:
            await local.add(waiter)
        except Exception:  # no channel layer (Redis down): the fallback reads still find the end
            logger.warning("turn wait without live wake-ups", exc_info=True)
        while True:
            waiter.wake.clear()  # before reading: a push during the read wakes the next wait
            turn = await read(tenant, turn_id)
            left = deadline - loop.time()
            if turn_is_settled(turn) or left <= 0:
                return turn
            with contextlib.suppress(TimeoutError):  # then a fallback read, or the deadline's last look
                await asyncio.wait_for(waiter.wake.wait(), min(left, fallback))
    finally:
        local.remove(waiter)


def turn_wait_sync(*, tenant, turn_id: uuid.UUID | str, timeout: float) -> Turn:
    """`turn_wait` for callers without an event loop (Celery tasks, management commands). The
    reads run back in the calling thread; the wait itself sleeps on the push like the async one.
    Each call subscribes anew (its own short-lived loop and hub): about one Redis round trip."""
    return async_to_sync(turn_wait)(tenant=tenant, turn_id=turn_id, timeout=timeout)
