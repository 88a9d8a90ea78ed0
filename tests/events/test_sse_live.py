"""The SSE streams (GET /api/events, GET /api/sessions/{id}/events) against a live daphne,
read incrementally with httpx."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from asgiref.sync import sync_to_async

from apps.conversations.models import ChatSession
from apps.events.services import publish
from apps.tenancy.principal import Actor
from apps.tenancy.services import api_key_revoke
from tests.conftest import create_key
from tests.events.sse import SSEReader

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

apublish = sync_to_async(publish)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def _client(server, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_tenant_stream_replays_after_last_event_id_then_streams_live(daphne_server, tenant):
    _, key = create_key(tenant)
    old = [publish(tenant, "job_update", {"n": n})["id"] for n in range(3)]

    async def scenario():
        async with (
            _client(daphne_server, key) as client,
            client.stream("GET", "/api/events", headers={"Last-Event-ID": str(old[0])}) as response,
        ):
            reader = SSEReader(response)
            replayed = [await reader.event(), await reader.event()]
            live = [await apublish(tenant, "job_update", {"n": n}) for n in (3, 4)]
            streamed = [await reader.event(), await reader.event()]
            return response.status_code, dict(response.headers), replayed, live, streamed

    status, headers, replayed, live, streamed = run(scenario())
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert [int(f["id"]) for f in replayed] == old[1:]
    assert [f["data"]["id"] for f in streamed] == [e["id"] for e in live]
    assert streamed[0]["event"] == "job_update"
    assert set(streamed[0]["data"]) == {"id", "type", "tenant", "session_id", "turn_id", "ts", "data"}


def test_session_stream_has_only_its_session_and_honours_the_query_id(daphne_server, tenant):
    _, key = create_key(tenant)
    mine = ChatSession.objects.create(tenant=tenant)
    other = ChatSession.objects.create(tenant=tenant)
    start = publish(tenant, "chat_token", {"delta": "before"}, session=mine)["id"]

    async def scenario():
        async with (
            _client(daphne_server, key) as client,
            client.stream("GET", f"/api/sessions/{mine.pk}/events?last_event_id={start - 1}") as response,
        ):
            reader = SSEReader(response)
            first = await reader.event()
            await apublish(tenant, "chat_token", {"delta": "other"}, session=other)
            await apublish(tenant, "job_update", {"tenant-level": True})
            await apublish(tenant, "chat_token", {"delta": "mine"}, session=mine)
            second = await reader.event()
            return first, second

    first, second = run(scenario())
    assert first["data"]["data"] == {"delta": "before"}
    assert second["data"]["data"] == {"delta": "mine"}


def test_without_an_id_the_stream_starts_now_and_beats_when_idle(daphne_server, tenant):
    _, key = create_key(tenant)
    session = ChatSession.objects.create(tenant=tenant)
    publish(tenant, "chat_token", {"old": True}, session=session)

    async def scenario():
        async with (
            _client(daphne_server, key) as client,
            client.stream("GET", f"/api/sessions/{session.pk}/events") as response,
        ):
            reader = SSEReader(response)
            frames = [await reader.next(timeout=5) for _ in range(3)]
            await apublish(tenant, "chat_token", {"new": True}, session=session)
            fresh = await reader.event("chat_token")
            return frames, fresh

    frames, fresh = run(scenario())
    assert frames[0] == {"retry": "1000"}
    assert frames[1:] == [{"comment": "heartbeat"}] * 2  # SSE_HEARTBEAT_SECONDS is 1 on the test server
    assert fresh["data"]["data"] == {"new": True}


def test_tenant_stream_carries_system_status_without_an_id(daphne_server, tenant):
    _, key = create_key(tenant)

    async def scenario():
        async with _client(daphne_server, key) as client, client.stream("GET", "/api/events") as response:
            return await SSEReader(response).event("system_status", timeout=10)

    status = run(scenario())
    assert "id" not in status
    assert status["data"]["type"] == "system_status"
    assert status["data"]["data"]["active_turns"] == 0


def test_event_source_accept_header_and_errors_before_the_stream(daphne_server, tenant, other_tenant):
    _, key = create_key(tenant)
    theirs = ChatSession.objects.create(tenant=other_tenant)
    accept = {"Accept": "text/event-stream"}
    with httpx.Client(base_url=daphne_server.url, timeout=10) as client:
        unauthenticated = client.get("/api/events", headers={**accept, "Authorization": "Bearer ap_x.y"})
        not_theirs = client.get(
            f"/api/sessions/{theirs.pk}/events", headers={**accept, "Authorization": f"Bearer {key}"}
        )
        bad_id = client.get("/api/events?last_event_id=-3", headers={"Authorization": f"Bearer {key}"})
        with client.stream("GET", "/api/events", headers={**accept, "Authorization": f"Bearer {key}"}) as ok:
            ok_status = ok.status_code
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]
    assert not_theirs.status_code == 404
    assert bad_id.status_code == 400
    assert bad_id.json()["fields"]["last_event_id"]
    assert ok_status == 200


def test_a_revoked_key_ends_its_stream(daphne_server, tenant):
    row, key = create_key(tenant)

    async def scenario():
        async with _client(daphne_server, key) as client, client.stream("GET", "/api/events") as response:
            reader = SSEReader(response)
            await reader.next()
            await sync_to_async(api_key_revoke)(tenant=tenant, api_key=row, actor=Actor.system("test"))
            return await reader.event("error", timeout=10)

    assert run(scenario())["data"]["error"] == "Unauthorized"


def test_a_client_that_stops_reading_is_cut_off_instead_of_buffered(daphne_server, tenant):
    """The stream waits for its reader (nothing piles up in the server), and after
    STREAM_STALL_SECONDS (3 here) of a full buffer the connection is dropped."""
    _, key = create_key(tenant)
    host, port = daphne_server.url.removeprefix("http://").split(":")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((host, int(port)))
    raw.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
    padding = "x" * 16_000
    for n in range(600):  # ~10 MB: more than the kernel's socket buffers hold
        publish(tenant, "job_update", {"n": n, "pad": padding})
    time.sleep(6)
    raw.settimeout(5)
    received, cut = 0, False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and (chunk := raw.recv(65536)):
            received += len(chunk)
        cut = time.monotonic() < deadline  # the server closed the connection
    except (ConnectionResetError, TimeoutError):
        cut = True
    raw.close()
    assert cut
    assert received < 600 * 16_000
    assert "dropping a stream whose client stopped reading" in daphne_server.log()
