"""The event log: trimming, reading it back across out-of-order commits, the WSGI fallback of the
SSE views, system_status figures, and the engine's token batching."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations import services as conversation_services
from apps.conversations.models import ChatSession, Message, Turn
from apps.core.chat_sessions import active_turn_counts
from apps.events import status
from apps.events.models import Event
from apps.events.selectors import events_after
from apps.events.services import publish
from apps.events.streaming import LogCursor, _read
from apps.events.tasks import trim_event_log
from tests.stubs.model_server import Reply


@pytest.mark.django_db
def test_trim_deletes_what_is_older_than_the_retention_and_keeps_the_rest(tenant, settings):
    settings.EVENT_RETENTION_HOURS = 24
    old = [publish(tenant, "job_update", {"n": n})["id"] for n in range(7)]
    recent = publish(tenant, "job_update", {"n": "recent"})["id"]
    Event.objects.filter(id__in=old).update(created_at=timezone.now() - timedelta(hours=25))

    assert trim_event_log() == 7
    assert trim_event_log() == 0  # idempotent
    assert list(Event.objects.filter(tenant=tenant).values_list("id", flat=True)) == [recent]


def test_the_trim_task_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["events.trim-log"]
    assert entry["task"] == "apps.events.tasks.trim_event_log"
    assert entry["schedule"] <= 3600


@pytest.mark.django_db(transaction=True)
def test_a_stream_finds_an_event_that_commits_after_a_higher_id(tenant):
    """Publisher A takes id N inside a transaction; publisher B takes N+1 and commits first. A
    reader positioned after N+1 must still get N once A commits, and only once."""
    inserted, release = threading.Event(), threading.Event()
    late: dict = {}

    def slow_publisher():
        try:
            with transaction.atomic():
                late["event"] = publish(tenant, "job_update", {"who": "slow"})
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    start = publish(tenant, "job_update", {"who": "first"})["id"]
    thread = threading.Thread(target=slow_publisher)
    thread.start()
    inserted.wait(10)
    quick = publish(tenant, "job_update", {"who": "quick"})
    assert quick["id"] > late["event"]["id"]

    cursor = LogCursor(start)
    first_read = _read(str(tenant.pk), None, *cursor.query())
    for message in first_read:
        cursor.sent(message["id"])
    release.set()
    thread.join()
    second_read = _read(str(tenant.pk), None, *cursor.query())
    for message in second_read:
        cursor.sent(message["id"])
    third_read = _read(str(tenant.pk), None, *cursor.query())

    assert [m["id"] for m in first_read] == [quick["id"]]
    assert [m["id"] for m in second_read] == [late["event"]["id"]]
    assert third_read == []
    assert cursor.position == quick["id"]


@pytest.mark.django_db
def test_subscription_reads_include_tenant_level_events(tenant):
    one = ChatSession.objects.create(tenant=tenant)
    two = ChatSession.objects.create(tenant=tenant)
    a = publish(tenant, "chat_token", {}, session=one)["id"]
    publish(tenant, "chat_token", {}, session=two)
    c = publish(tenant, "job_update", {})["id"]
    got = list(events_after(tenant=tenant, session_ids={str(one.pk)}).values_list("id", flat=True))
    assert got == [a, c]


@pytest.mark.django_db
def test_without_asgi_the_stream_answers_the_backlog_and_ends(owner_client, tenant, other_tenant):
    """Under WSGI (here: the test client) a response cannot stream; EventSource then polls."""
    mine = publish(tenant, "job_update", {"n": 1})["id"]
    publish(other_tenant, "job_update", {"n": "theirs"})
    response = owner_client.get("/api/events?last_event_id=0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache"
    body = response.content.decode()
    assert body.startswith("retry: 1000\n\n")
    assert f"id: {mine}\nevent: job_update\n" in body
    assert str(other_tenant.pk) not in body


@pytest.mark.django_db
def test_system_status_figures(tenant, other_tenant, settings):
    session = ChatSession.objects.create(tenant=tenant)
    for state in (Turn.Status.RUNNING, Turn.Status.COMPLETED):
        question = Message.objects.create(tenant=tenant, session=session, role="user", parts=[])
        Turn.objects.create(tenant=tenant, session=session, input_message=question, status=state)
    counts = active_turn_counts(tenant_ids=[tenant.pk, other_tenant.pk])
    assert counts == {str(tenant.pk): 1, str(other_tenant.pk): 0}
    figures = status.snapshot([str(tenant.pk)])[str(tenant.pk)]
    assert figures["active_turns"] == 1
    assert figures["queue_depth"] == 0
    assert figures["workers"] is not None  # a number (0 here: this test has no worker), cached


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_providers")
def test_token_deltas_are_batched_into_few_chat_token_events(
    tenant, make_provider, model_server, django_capture_on_commit_callbacks, settings
):
    """A fast model (100 tiny chunks, 2 ms apart) must not become 100 events: the engine
    batches deltas every TOKEN_BATCH_MS (30 ms), and loses no text doing so."""
    settings.TOKEN_BATCH_MS = 30
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="fast", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    agent = Agent.objects.create(tenant=tenant, name="fast", guide_model=model, enabled_tools=[])
    chunks = [f"t{n} " for n in range(100)]
    model_server.script([Reply(chunks=chunks, chunk_delay=0.002)])
    session = conversation_services.session_create(tenant=tenant, agent=agent)
    with django_capture_on_commit_callbacks(execute=True):
        _, turn = conversation_services.message_post(
            tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": "go"}]
        )
    tokens = Event.objects.filter(turn_id=turn.pk, type="chat_token").order_by("id")
    assert "".join(e.data["delta"] for e in tokens) == "".join(chunks)
    # 100 chunks over >= 200 ms at one event per 30 ms: about 7-10 events, never one per chunk.
    assert 2 <= tokens.count() <= 25
