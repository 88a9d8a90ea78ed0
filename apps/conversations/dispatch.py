"""Getting committed turns to the broker, also when the broker was down at commit time.

A transactional outbox in its smallest form: the queued Turn row *is* the outbox entry and
`dispatched_at` its sent marker. The POST commits message and turn, then tries the broker once
(no retries: the client is waiting). Success stamps `dispatched_at`; failure is logged and the
client still gets its 202 and turn id, because the dispatcher (tasks.dispatch_pending_turns,
every TURN_DISPATCH_SWEEP_SECONDS on beat, and once at each worker start) sends every queued
turn that has waited longer than TURN_DISPATCH_GRACE_SECONDS (since it was posted, or
resumed after an approval) and has no marker.

Each send is claimed first by a compare-and-set on `dispatched_at`, so two dispatchers (two
beats, a beat and a starting worker) never send the same turn twice; a failed send gives the
claim back. execute_turn is idempotent on top of that, so a rare double send costs a claim.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.conversations.models import Turn

logger = logging.getLogger(__name__)

BROKER_ERRORS = (KombuOperationalError, RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
SWEEP_BATCH = 500


_local = threading.local()


def _connection():
    """A broker connection of this thread that gives up at the first refusal.

    Celery's pooled connection retries the connect for up to broker_connection_timeout (~6 s
    measured) even with retry=False, which would hold a client's POST for that long while the
    broker is down; this one fails in milliseconds and the dispatcher does the retrying.
    Keyed by process and URL: a forked child or a changed broker gets a connection of its own.
    """
    from celery import current_app as app  # agentplatform's app; apps do not import the project

    key = (os.getpid(), app.conf.broker_url)
    if getattr(_local, "key", None) != key:
        options = {**(app.conf.broker_transport_options or {}), "max_retries": 0}
        _local.key, _local.connection = key, app.connection_for_write(transport_options=options)
    return _local.connection


def _drop_connection() -> None:
    connection = getattr(_local, "connection", None)
    _local.key = _local.connection = None
    if connection is not None:
        with contextlib.suppress(Exception):
            connection.close()


def _publish(turn_id) -> bool:
    from apps.conversations.tasks import execute_turn

    try:
        execute_turn.apply_async((str(turn_id),), retry=False, connection=_connection())
    except BROKER_ERRORS as exc:
        _drop_connection()  # a half-broken connection must not be reused once the broker is back
        logger.warning("turn %s is committed but the broker refused it (%s); the dispatcher will send it", turn_id, exc)
        return False
    return True


def turn_send(*, turn_id) -> bool:
    """Send a committed turn's task now; True when the broker took it."""
    if not _publish(turn_id):
        return False
    Turn.objects.filter(pk=turn_id, dispatched_at__isnull=True).update(dispatched_at=timezone.now())
    return True


def turn_enqueue_on_commit(*, turn_id) -> None:
    transaction.on_commit(lambda: turn_send(turn_id=turn_id))


def turns_dispatch_pending(*, now: dt.datetime | None = None) -> int:
    """Send queued turns that the broker never took; returns how many were sent."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.TURN_DISPATCH_GRACE_SECONDS)
    pending = list(
        # updated_at: when it became queued (posted, or resumed after an approval)
        Turn.objects.filter(status=Turn.Status.QUEUED, dispatched_at__isnull=True, updated_at__lt=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    sent = 0
    for turn_id in pending:
        claimed = Turn.objects.filter(pk=turn_id, status=Turn.Status.QUEUED, dispatched_at__isnull=True).update(
            dispatched_at=timezone.now()
        )
        if not claimed:
            continue  # another dispatcher took it, or it started running meanwhile
        if not _publish(turn_id):
            Turn.objects.filter(pk=turn_id).update(dispatched_at=None)
            break  # the broker is still down: the next sweep tries again
        sent += 1
    if sent:
        logger.info("dispatched %s turn(s) the broker had not taken", sent)
    return sent
