"""A turn streamed live: HTTP POST to a live daphne, the real Celery worker runs the turn
against the stub model server, and the client watches over /ws (the `websockets` library) or
SSE (httpx streaming) on the same daphne."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations.models import Turn
from apps.events.models import Event
from tests.conftest import create_key
from tests.events import live
from tests.events.sse import SSEReader
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHUNKS = [f"word{n} " for n in range(12)]


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker):
    yield from live.serve_daphne()


@pytest.fixture
def streaming_agent(tenant, make_provider, model_server, fast_providers):
    """An agent on the stub model, which streams CHUNKS with a pause between them (a turn of
    about a second, so a client can watch it happen)."""
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="stub", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    model_server.default_reply = Reply(chunks=CHUNKS, chunk_delay=0.08)
    return Agent.objects.create(tenant=tenant, name="streamer", guide_model=model, enabled_tools=[])


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 90))


async def _post(server, key: str, session_id: str, text: str = "go") -> str:
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        accepted = await client.post(f"/api/sessions/{session_id}/messages", json={"text": text})
        assert accepted.status_code == 202, accepted.text
        return accepted.json()["turn_id"]


def _new_session(server, key: str, agent: Agent) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    created = httpx.post(f"{server.url}/api/sessions", json={"agent": agent.name}, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _turn_events(turn_id: str) -> list[int]:
    return list(Event.objects.filter(turn_id=turn_id).order_by("id").values_list("id", flat=True))


def test_a_turn_streams_over_the_websocket_in_order(daphne_server, real_worker, tenant, streaming_agent):
    _, key = create_key(tenant)
    session_id = _new_session(daphne_server, key, streaming_agent)

    async def scenario():
        sock = await live.open_socket(daphne_server, key=key)
        turn_id = await _post(daphne_server, key, session_id)
        events = await sock.events_until(lambda e: e["type"] in ("chat_complete", "turn_failed"), timeout=60)
        await sock.close()
        return turn_id, events

    turn_id, events = run(scenario())
    kinds = [e["type"] for e in events if e["turn_id"] == turn_id]
    assert kinds[0] == "turn_started"
    assert kinds[-1] == "chat_complete", events[-1]
    assert kinds.count("chat_token") >= 2  # batched every TOKEN_BATCH_MS, so fewer than the chunks
    assert set(kinds) <= {"turn_started", "decision", "chat_token", "chat_complete"}
    text = "".join(e["data"]["delta"] for e in events if e["type"] == "chat_token")
    assert text == "".join(CHUNKS)
    assert [e["id"] for e in events if e["turn_id"] == turn_id] == _turn_events(turn_id)


def test_reconnecting_mid_turn_with_last_event_id_loses_and_repeats_nothing(
    daphne_server, real_worker, tenant, streaming_agent
):
    _, key = create_key(tenant)
    session_id = _new_session(daphne_server, key, streaming_agent)

    async def scenario():
        first = await live.open_socket(daphne_server, f"?session_id={session_id}", key=key)
        turn_id = await _post(daphne_server, key, session_id)
        await first.events_until(lambda e: e["type"] == "chat_token" and e["turn_id"] == turn_id, timeout=30)
        await first.close()  # drop the connection mid-turn
        last_seen = first.events[-1]["id"]
        await asyncio.sleep(0.3)  # events keep coming while nobody listens
        second = await live.open_socket(daphne_server, f"?session_id={session_id}&last_event_id={last_seen}", key=key)
        await second.events_until(lambda e: e["type"] == "chat_complete", timeout=60)
        await second.close()
        return turn_id, first.events, second.events

    turn_id, before, after = run(scenario())
    ids = [e["id"] for e in before + after if e["turn_id"] == turn_id]
    assert len(ids) == len(set(ids)), "an event came twice"
    assert ids == _turn_events(turn_id), "an event was lost or out of order"
    assert after, "the reconnect saw nothing"
    assert Turn.objects.get(pk=turn_id).status == "completed"


def test_a_turn_streams_over_sse_before_it_ends(daphne_server, real_worker, tenant, streaming_agent):
    """Incremental, not buffered: when the first chat_token arrives, the turn is still running."""
    _, key = create_key(tenant)
    session_id = _new_session(daphne_server, key, streaming_agent)

    async def scenario():
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        async with (
            httpx.AsyncClient(base_url=daphne_server.url, headers=headers, timeout=60) as client,
            client.stream("GET", f"/api/sessions/{session_id}/events") as response,
        ):
            reader = SSEReader(response)
            await reader.next()  # the stream is open (retry hint)
            turn_id = await _post(daphne_server, key, session_id)
            await reader.event("chat_token", timeout=30)
            status_at_first_token = await asyncio.to_thread(_status, turn_id)
            while (await reader.event(timeout=30))["event"] not in ("chat_complete", "turn_failed"):
                pass
            return turn_id, status_at_first_token, reader.events()

    turn_id, status_at_first_token, frames = run(scenario())
    assert status_at_first_token == "running"
    kinds = [f["event"] for f in frames]
    assert kinds[0] == "turn_started"
    assert kinds[-1] == "chat_complete"
    assert [f["data"]["id"] for f in frames] == _turn_events(turn_id)
    assert [int(f["id"]) for f in frames] == _turn_events(turn_id)


def _status(turn_id: str) -> str:
    from django.db import connection

    try:
        return Turn.objects.get(pk=turn_id).status
    finally:
        connection.close()
