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
from apps.core.db import non_durable_commit

logger = logging.getLogger(__name__)

BROKER_ERRORS = (KombuOperationalError, RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
SWEEP_BATCH = 500


# Idle broker producers of this process, shared by all its threads. Not thread-local: daphne runs
# each request's sync code in a thread of its own (Django's ThreadSensitiveContext), so a
# thread-local connection was a new Redis connection, CLIENT SETINFO, PING and queue declare
# (LLEN) on every POST: 11.1 ms p50 per publish from a fresh thread, 2.2 ms pooled (measured on
# a loaded machine). A producer is used by
# one thread at a time: taken from the pool, used, put back.
_IDLE_MAX = 8
_idle: list = []
_idle_key: tuple | None = None
_idle_lock = threading.Lock()


def _new_producer():
    """A producer on a broker connection that gives up at the first refusal.

    Celery's pooled connection retries the connect for up to broker_connection_timeout (~6 s
    measured) even with retry=False, which would hold a client's POST for that long while the
    broker is down; this one fails in milliseconds and the dispatcher does the retrying.
    """
    from celery import current_app as app  # agentplatform's app; apps do not import the project

    options = {**(app.conf.broker_transport_options or {}), "max_retries": 0}
    connection = app.connection_for_write(transport_options=options)
    return app.amqp.Producer(connection, auto_declare=False)


def _pool_key() -> tuple:
    from celery import current_app as app

    # A forked child or a changed broker URL starts with producers of its own.
    return (os.getpid(), app.conf.broker_url)


def _take_producer():
    global _idle, _idle_key
    key = _pool_key()
    with _idle_lock:
        if _idle_key != key:
            _idle, _idle_key = [], key  # the parent's sockets are not ours to close
        if _idle:
            return key, _idle.pop()
    return key, _new_producer()


def _give_back(key: tuple, producer) -> None:
    with _idle_lock:
        if key == _idle_key and len(_idle) < _IDLE_MAX:
            _idle.append(producer)
            return
    _close(producer)


def _close(producer) -> None:
    with contextlib.suppress(Exception):
        producer.connection.close()


def _drop_producers() -> None:
    """Close every idle producer (tests that move the broker; after a broker error)."""
    with _idle_lock:
        idle, _idle[:] = list(_idle), []
    for producer in idle:
        _close(producer)


def _publish(turn_id) -> bool:
    from apps.conversations.tasks import execute_turn

    key, producer = _take_producer()
    try:
        execute_turn.apply_async((str(turn_id),), retry=False, producer=producer)
    except BROKER_ERRORS as exc:
        # A half-broken connection must not be reused once the broker is back, nor its idle
        # siblings, which met the same outage.
        _close(producer)
        _drop_producers()
        logger.warning("turn %s is committed but the broker refused it (%s); the dispatcher will send it", turn_id, exc)
        return False
    _give_back(key, producer)
    return True


def turn_send(*, turn_id) -> bool:
    """Send a committed turn's task now; True when the broker took it."""
    if not _publish(turn_id):
        return False
    # The marker only spares the sweep a send: if a database crash loses it, the sweep sends the
    # turn again and the claim makes that harmless. So its commit does not wait for the disk
    # (4 ms of the POST here).
    with non_durable_commit():
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
