"""A message posted while the broker is down is accepted, and its turn runs exactly once when
the broker is back (the outbox in apps/conversations/dispatch.py); Idempotency-Key retries."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import time
from contextlib import contextmanager

import pytest
import redis

from agentplatform.celery import app as celery_app
from agentplatform.embedded import EmbeddedRedis
from apps.conversations import dispatch
from apps.conversations.models import Message, Turn
from apps.events.models import Event

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _broker(url: str):
    """Point Celery's producers at `url`, as a worker or web process configured with it would be."""
    saved = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = url, False
    _drop_connections()
    try:
        yield
    finally:
        celery_app.conf.broker_url, celery_app.conf.task_always_eager = saved
        _drop_connections()


def _drop_connections() -> None:
    # Not closed: kombu keeps one pool per broker URL, and the suite's own is used again after.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def _redis_server(port: int):
    server = subprocess.Popen(
        [EmbeddedRedis.binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield client
    finally:
        server.terminate()
        server.wait(10)


def _queued_turn_ids(client: redis.Redis) -> list[str]:
    return [ast.literal_eval(json.loads(raw)["headers"]["argsrepr"]) for raw in client.lrange("celery", 0, -1)]


def _run_queued_tasks(client: redis.Redis) -> int:
    """Be the worker: run every message on the queue through the real task."""
    from apps.conversations.tasks import execute_turn

    ran = 0
    while (raw := client.lpop("celery")) is not None:
        headers = json.loads(raw)["headers"]
        assert headers["task"] == execute_turn.name
        execute_turn.apply(args=ast.literal_eval(headers["argsrepr"])).get()
        ran += 1
    return ran


def test_post_while_broker_is_down_is_202_and_the_turn_runs_once_when_it_returns(
    owner_client, chat_session, django_capture_on_commit_callbacks, settings
):
    settings.TURN_DISPATCH_GRACE_SECONDS = 0
    port = _free_port()  # nothing listens here yet: the broker is down
    with _broker(f"redis://127.0.0.1:{port}/0"):
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            response = owner_client.post(
                f"/api/sessions/{chat_session.pk}/messages", {"text": "are you there?"}, format="json"
            )
        assert response.status_code == 202
        # Not a timing benchmark: Celery's own connection would have retried for ~6 s here.
        assert time.monotonic() - started < 3
        turn = Turn.objects.get(pk=response.json()["turn_id"])
        assert turn.status == Turn.Status.QUEUED
        assert turn.dispatched_at is None
        assert dispatch.turns_dispatch_pending() == 0  # still down: the claim is given back
        assert Turn.objects.get(pk=turn.pk).dispatched_at is None

        with _redis_server(port) as broker:
            assert dispatch.turns_dispatch_pending() == 1
            assert dispatch.turns_dispatch_pending() == 0  # a second sweep (another beat) sends nothing
            assert _queued_turn_ids(broker) == [(str(turn.pk),)]
            assert _run_queued_tasks(broker) == 1

    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED
    assert turn.attempt == 1
    assert turn.dispatched_at is not None
    assert Event.objects.filter(turn_id=turn.pk, type="turn_started").count() == 1


def test_post_with_the_broker_up_marks_the_turn_dispatched_and_the_sweep_leaves_it(
    owner_client, chat_session, settings, django_capture_on_commit_callbacks
):
    settings.TURN_DISPATCH_GRACE_SECONDS = 0
    with _broker(settings.REDIS_URL):  # the suite's Redis; no worker consumes it here
        with django_capture_on_commit_callbacks(execute=True):
            response = owner_client.post(f"/api/sessions/{chat_session.pk}/messages", {"text": "hi"}, format="json")
        turn = Turn.objects.get(pk=response.json()["turn_id"])
        assert turn.status == Turn.Status.QUEUED
        assert turn.dispatched_at is not None
        assert dispatch.turns_dispatch_pending() == 0
        assert _queued_turn_ids(redis.Redis.from_url(settings.REDIS_URL)) == [(str(turn.pk),)]


def test_retry_with_the_same_idempotency_key_returns_the_same_turn(owner_client, chat_session):
    url = f"/api/sessions/{chat_session.pk}/messages"
    first = owner_client.post(url, {"text": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="req-1")
    again = owner_client.post(url, {"text": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="req-1")
    other = owner_client.post(url, {"text": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="req-2")
    assert first.status_code == again.status_code == other.status_code == 202
    assert again.json() == first.json()
    assert other.json()["turn_id"] != first.json()["turn_id"]
    assert Message.objects.filter(session=chat_session, role="user").count() == 2
    assert Turn.objects.filter(session=chat_session).count() == 2


def test_malformed_idempotency_key_is_400(owner_client, chat_session):
    response = owner_client.post(
        f"/api/sessions/{chat_session.pk}/messages", {"text": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="a b"
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["fields"]


@pytest.fixture
def chat_session(tenant, agent):
    from apps.conversations import services

    return services.session_create(tenant=tenant, agent=agent)


def test_a_starting_worker_sends_turns_committed_while_the_broker_was_down(
    owner_client, chat_session, django_capture_on_commit_callbacks, settings
):
    from celery.signals import worker_ready

    settings.TURN_DISPATCH_GRACE_SECONDS = 0
    port = _free_port()
    with _broker(f"redis://127.0.0.1:{port}/0"):
        with django_capture_on_commit_callbacks(execute=True):
            response = owner_client.post(f"/api/sessions/{chat_session.pk}/messages", {"text": "hi"}, format="json")
        with _redis_server(port) as broker:
            worker_ready.send(sender=None)  # what celery sends once a worker is connected and consuming
            assert _queued_turn_ids(broker) == [(response.json()["turn_id"],)]
