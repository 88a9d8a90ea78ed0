"""Synchronous faces wait on the push, not on a pooled connection: a live daphne with a pool of
10 database connections answers 50 concurrent `/api/agent/message` requests while the real
Celery worker works through their turns, and stays responsive to other calls meanwhile.

The server's fallback reads are a minute away (TURN_WAIT_FALLBACK_SECONDS, SSE_FALLBACK_POLL_SECONDS,
SSE_HEARTBEAT_SECONDS), so every answer within the test's bounds was woken by a push."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations.models import Turn
from tests.conftest import create_key
from tests.events import live
from tests.events.sse import SSEReader
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONCURRENT = 50
CHUNKS = ["slow ", "and ", "steady ", "answers ", "the ", "call"]


@pytest.fixture(scope="session")
def daphne_pool_of_ten(django_db_setup, django_db_blocker):
    yield from live.serve_daphne(
        {
            "DB_POOL_MAX_SIZE": "10",
            "TURN_WAIT_FALLBACK_SECONDS": "60",
            "SSE_FALLBACK_POLL_SECONDS": "60",
            "SSE_HEARTBEAT_SECONDS": "60",
        }
    )


@pytest.fixture
def stub_agent(tenant, make_provider, model_server, fast_providers):
    """A turn of about 0.3 s of streaming: 50 of them keep the worker (2 processes) busy for
    several seconds, during which the 50 requests wait."""
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="stub", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    model_server.default_reply = Reply(chunks=CHUNKS, chunk_delay=0.05)
    return Agent.objects.create(tenant=tenant, name="steady", guide_model=model, enabled_tools=[])


def _turn_count() -> int:
    from django.db import connection

    try:
        return Turn.objects.count()
    finally:
        connection.close()


def test_fifty_waiting_requests_on_ten_connections_all_answer_and_the_api_stays_responsive(
    daphne_pool_of_ten, real_worker, tenant, stub_agent
):
    _, key = create_key(tenant)
    headers = {"Authorization": f"Bearer {key}"}

    async def scenario():
        limits = httpx.Limits(max_connections=CONCURRENT + 10)
        async with httpx.AsyncClient(
            base_url=daphne_pool_of_ten.url, headers=headers, timeout=120, limits=limits
        ) as client:
            posts = [
                asyncio.ensure_future(
                    client.post("/api/agent/message", json={"text": f"question {n}", "agent": "steady"})
                )
                for n in range(CONCURRENT)
            ]
            # Every request has started its turn (and now waits) before the other calls begin.
            deadline = time.monotonic() + 60
            while await asyncio.to_thread(_turn_count) < CONCURRENT:
                assert time.monotonic() < deadline, "the 50 turns were not all started"
                await asyncio.sleep(0.1)
            others = []
            async with httpx.AsyncClient(base_url=daphne_pool_of_ten.url, headers=headers, timeout=5) as other:
                for _ in range(5):
                    pending = sum(not post.done() for post in posts)
                    started = time.monotonic()
                    listed = await other.get("/api/sessions")  # raises if it takes over 5 s
                    others.append((listed.status_code, pending, time.monotonic() - started))
            replies = await asyncio.gather(*posts)
            return others, replies

    others, replies = asyncio.run(asyncio.wait_for(scenario(), 240))

    assert [status for status, _, _ in others] == [200] * 5
    assert all(pending > 0 for _, pending, _ in others), f"the other calls ran after the waits ended: {others}"
    assert [reply.status_code for reply in replies] == [200] * CONCURRENT, [
        r.text for r in replies if r.status_code != 200
    ]
    bodies = [reply.json() for reply in replies]
    assert {body["text"] for body in bodies} == {"".join(CHUNKS)}
    assert len({body["turnId"] for body in bodies}) == CONCURRENT
    assert len({body["sessionId"] for body in bodies}) == CONCURRENT
    assert Turn.objects.filter(status=Turn.Status.COMPLETED).count() == CONCURRENT


def test_the_streaming_face_is_woken_by_pushes(daphne_pool_of_ten, real_worker, tenant, stub_agent):
    _, key = create_key(tenant)

    async def scenario():
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            httpx.AsyncClient(base_url=daphne_pool_of_ten.url, headers=headers, timeout=60) as client,
            client.stream("POST", "/api/agent/message/stream", json={"text": "go", "agent": "steady"}) as response,
        ):
            assert response.status_code == 200
            reader = SSEReader(response)
            kinds = []
            while not kinds or kinds[-1] not in ("chat_complete", "turn_failed"):
                kinds.append((await reader.event(timeout=30))["event"])  # far below the minute of the fallback
            return kinds

    kinds = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert kinds[0] == "turn_started"
    assert kinds[-1] == "chat_complete"
    assert "chat_token" in kinds
