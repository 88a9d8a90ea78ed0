"""The /ws consumer through channels' WebsocketCommunicator: fast checks of its logic, on the
real channel layer (Redis) and database, without a server process."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from apps.events.routing import websocket_application
from apps.events.services import publish, tenant_group
from tests.conftest import create_key

pytestmark = pytest.mark.django_db(transaction=True)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def _connect(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(websocket_application(), path)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _until(communicator: WebsocketCommunicator, kind: str) -> list[dict]:
    seen = []
    while True:
        message = await communicator.receive_json_from(timeout=5)
        seen.append(message)
        if message["type"] == kind and not isinstance(message.get("id"), int):
            return seen


def test_no_credentials_is_an_error_then_close_4401():
    async def scenario():
        communicator = await _connect("/ws")
        error = await communicator.receive_json_from()
        closed = await communicator.receive_output()
        return error, closed

    error, closed = run(scenario())
    assert error["error"] == "Unauthorized"
    assert closed == {"type": "websocket.close", "code": 4401}


def test_a_malformed_last_event_id_closes_with_4400(tenant):
    _, key = create_key(tenant)

    async def scenario():
        communicator = await _connect(f"/ws?token={key}&last_event_id=abc")
        await communicator.receive_json_from()
        return await communicator.receive_output()

    assert run(scenario())["code"] == 4400


def test_a_push_of_an_event_the_replay_already_sent_is_dropped(tenant):
    """The replay read returns an event whose push is still on its way: the push must not
    deliver it a second time. Neither may a push of an event the client said it had."""
    _, key = create_key(tenant)
    had = publish(tenant, "job_update", {"n": 0})
    replayed = [publish(tenant, "job_update", {"n": n}) for n in (1, 2)]

    async def scenario():
        communicator = await _connect(f"/ws?token={key}&last_event_id={had['id']}")
        before = await _until(communicator, "replayed")
        layer = get_channel_layer()
        for late in (replayed[-1], had):  # pushes arriving after the replay read them
            await layer.group_send(tenant_group(tenant.pk), {"type": "event.push", "event": late})
        fresh = await sync_to_async(publish)(tenant, "job_update", {"n": 3})
        after = [await communicator.receive_json_from(timeout=5)]
        await communicator.send_json_to({"action": "ping"})
        after += await _until(communicator, "pong")
        await communicator.disconnect()
        return before, after, fresh

    before, after, fresh = run(scenario())
    assert [m["id"] for m in before if isinstance(m.get("id"), int)] == [e["id"] for e in replayed]
    assert [m.get("id") for m in after] == [fresh["id"], None]


def test_a_push_for_another_tenant_never_passes_even_if_misrouted(tenant, other_tenant):
    """Defence in depth: the consumer checks the envelope's tenant, not only its group."""
    _, key = create_key(tenant)
    theirs = publish(other_tenant, "job_update", {"secret": True})

    async def scenario():
        communicator = await _connect(f"/ws?token={key}")
        await _until(communicator, "connected")
        await get_channel_layer().group_send(tenant_group(tenant.pk), {"type": "event.push", "event": theirs})
        await communicator.send_json_to({"action": "ping"})
        got = await _until(communicator, "pong")
        await communicator.disconnect()
        return got

    assert [m["type"] for m in run(scenario())] == ["pong"]
