"""turn_wait: a wait for a turn wakes on the turn's pushed events and reads the database only
then (once at the start, once per wake-up, at the deadline, and on the rare fallback).

The wait's reads run in the calling thread (here the test's), so `django_assert_num_queries`
counts exactly what the wait asked of the database; the worker runs in another thread with its
own connection, whose queries are not counted."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from agentplatform.celery import app as celery_app
from apps.conversations import services
from apps.conversations.models import Message, Turn
from apps.conversations.tasks import execute_turn
from apps.conversations.turns.wait import turn_wait, turn_wait_sync
from apps.policy import services as policy_services
from apps.tenancy.principal import Actor


@pytest.fixture
def no_worker():
    """Tasks go to the broker and nothing consumes them: the test decides when the turn runs."""
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True


@pytest.fixture
def slow_fallback(settings):
    """A fallback read a minute away: whatever the wait sees within a test, a push woke it for."""
    settings.TURN_WAIT_FALLBACK_SECONDS = 60.0


def queued_turn(tenant, agent, text: str) -> Turn:
    session = services.session_create(tenant=tenant, agent=agent)
    _, turn = services.message_post(
        tenant=tenant, session=session, role=Message.Role.USER, parts=[{"type": "text", "text": text}]
    )
    return turn


def run_on_a_worker_thread(turn_id) -> None:
    """What a Celery worker does with the queued task, on a thread of its own."""
    try:
        execute_turn.apply(args=[str(turn_id)])
    finally:
        connection.close()


@pytest.mark.django_db
def test_a_turn_that_finished_before_the_wait_is_returned_with_one_read(
    chat, tenant, django_assert_num_queries, slow_fallback
):
    turn = chat("what is 6*7?")  # runs inline: completed before anyone waits
    with django_assert_num_queries(1):
        waited = turn_wait_sync(tenant=tenant, turn_id=turn.pk, timeout=30)
    assert waited.status == Turn.Status.COMPLETED
    assert "42" in waited.output_message.text  # the answer came with the same read


@pytest.mark.django_db
def test_another_tenants_turn_is_not_found(chat, other_tenant):
    turn = chat("hello")
    with pytest.raises(Turn.DoesNotExist):
        turn_wait_sync(tenant=other_tenant, turn_id=turn.pk, timeout=1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_worker", "slow_fallback")
def test_a_wait_sleeps_without_queries_and_wakes_when_the_turn_answers(tenant, agent, django_assert_num_queries):
    turn = queued_turn(tenant, agent, "what is 6*7?")

    async def scenario():
        waiting = asyncio.ensure_future(turn_wait(tenant=tenant, turn_id=turn.pk, timeout=60))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # subscribed, read once, asleep
        await asyncio.to_thread(run_on_a_worker_thread, turn.pk)
        return await asyncio.wait_for(waiting, 15)  # far below the minute of the fallback

    # One read at the start, one when chat_complete woke it: none while it waited.
    with django_assert_num_queries(2):
        waited = async_to_sync(scenario)()
    assert waited.status == Turn.Status.COMPLETED
    assert "42" in waited.output_message.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_worker", "slow_fallback")
def test_a_wait_returns_when_the_turn_parks_for_approval(tenant, agent, django_assert_num_queries):
    policy_services.tool_rule_set(
        tenant=tenant, actor=Actor.system("test"), tool_name="current_time", action="require_approval"
    )
    turn = queued_turn(tenant, agent, "what time is it?")

    async def scenario():
        waiting = asyncio.ensure_future(turn_wait(tenant=tenant, turn_id=turn.pk, timeout=60))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(run_on_a_worker_thread, turn.pk)
        return await asyncio.wait_for(waiting, 15)

    with django_assert_num_queries(2):  # woken by approval_request
        waited = async_to_sync(scenario)()
    assert waited.status == Turn.Status.WAITING_APPROVAL


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_worker", "slow_fallback")
def test_a_wait_that_times_out_returns_the_turn_as_it_is_after_two_reads(tenant, agent, django_assert_num_queries):
    turn = queued_turn(tenant, agent, "hello")  # nothing runs it
    with django_assert_num_queries(2):  # at the start and at the deadline
        waited = turn_wait_sync(tenant=tenant, turn_id=turn.pk, timeout=1.0)
    assert waited.status == Turn.Status.QUEUED


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_worker")
def test_the_fallback_read_finds_a_turn_whose_push_was_lost(tenant, agent, settings):
    settings.TURN_WAIT_FALLBACK_SECONDS = 0.3
    turn = queued_turn(tenant, agent, "hello")

    def end_without_a_push() -> None:
        # The row changes but no event is published: as when Redis restarts mid-push.
        try:
            Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.CANCELLED)
        finally:
            connection.close()

    timer = threading.Timer(0.5, end_without_a_push)
    timer.start()
    try:
        waited = turn_wait_sync(tenant=tenant, turn_id=turn.pk, timeout=30)
    finally:
        timer.join()
    assert waited.status == Turn.Status.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_agent_message_answers_202_when_the_turn_parks(owner_client, agent, tenant):
    policy_services.tool_rule_set(
        tenant=tenant, actor=Actor.system("test"), tool_name="current_time", action="require_approval"
    )
    response = owner_client.post("/api/agent/message", {"text": "what time is it?"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == Turn.Status.WAITING_APPROVAL
    assert Turn.objects.get(pk=body["turnId"]).status == Turn.Status.WAITING_APPROVAL


@pytest.mark.django_db
def test_the_async_faces_keep_drfs_answers_for_credentials_methods_and_bodies(owner_client, anon_client, agent):
    assert anon_client.post("/api/agent/message", {"text": "hi"}, format="json").status_code == 401
    wrong_method = owner_client.get("/api/tasks")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]
    assert owner_client.options("/api/agent/message").status_code == 200
    malformed = owner_client.post("/api/agent/message", "{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert malformed.json()["error"]
    assert owner_client.post("/api/agent/message", {"text": ""}, format="json").json()["fields"]


@pytest.mark.django_db
def test_the_async_faces_spend_from_the_chat_rate_limit(owner_client, agent, settings):
    settings.CHAT_RATE_LIMIT = "1/minute"
    settings.SYNC_TURN_TIMEOUT_SECONDS = 0.2  # the turn is never run here (its commit never comes)
    first = owner_client.post("/api/agent/message", {"text": "hi"}, format="json")
    assert first.status_code == 504
    assert first["RateLimit-Policy"].startswith('"chat"')
    second = owner_client.post("/api/tasks", {"topic": "hi"}, format="json")
    assert second.status_code == 429
    assert int(second["Retry-After"]) >= 1
