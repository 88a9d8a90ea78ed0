"""/ws against a live daphne with the `websockets` client: authentication and close codes,
actions, subscriptions, replay, overflow and tenant separation. Events are published from this
process with publish(), as a worker would."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from websockets.asyncio.client import connect

from apps.conversations.models import ChatSession
from apps.events.models import Event
from apps.events.push import pusher
from apps.events.services import publish
from apps.tenancy.principal import Actor
from apps.tenancy.services import api_key_revoke, tenant_suspend
from tests.conftest import create_key
from tests.events.live import open_socket
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def _session(tenant) -> ChatSession:
    return ChatSession.objects.create(tenant=tenant, title="rt")


apublish = sync_to_async(publish)


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    ["none", "header", "query", "subprotocol"],
)
def test_missing_or_bad_credentials_close_with_4401(daphne_server, tenant, how):
    create_key(tenant)

    async def scenario():
        kwargs, query = {}, ""
        if how == "header":
            kwargs["additional_headers"] = {"Authorization": "Bearer ap_nothere.wrongsecret"}
        elif how == "query":
            query = "?token=ap_nothere.wrongsecret"
        elif how == "subprotocol":
            kwargs["subprotocols"] = ["bearer", "ap_nothere.wrongsecret"]
        sock = await open_socket(daphne_server, query, expect_connected=False, **kwargs)
        if how == "subprotocol":
            assert sock.connection.subprotocol == "bearer"  # browsers need it echoed to see the code
        first = await sock.next()
        assert first["type"] == "error"
        assert first["error"] == "Unauthorized"
        return await sock.close_code()

    assert run(scenario()) == 4401


def test_a_suspended_tenants_key_gets_4401(daphne_server, tenant):
    _, key = create_key(tenant)
    tenant_suspend(tenant=tenant, actor=Actor.system("test"), reason="test")

    async def scenario():
        sock = await open_socket(daphne_server, key=key, expect_connected=False)
        return await sock.close_code()

    assert run(scenario()) == 4401


def test_key_in_query_or_subprotocol_connects_to_its_tenant(daphne_server, tenant):
    _, key = create_key(tenant)

    async def scenario():
        by_query = await open_socket(daphne_server, f"?token={key}", expect_connected=False)
        hello = await by_query.notice("connected")
        by_protocol = await open_socket(daphne_server, subprotocols=["bearer", key], expect_connected=False)
        assert by_protocol.connection.subprotocol == "bearer"
        hello2 = await by_protocol.notice("connected")
        await by_query.close()
        await by_protocol.close()
        return hello, hello2

    hello, hello2 = run(scenario())
    assert hello["tenant"] == hello2["tenant"] == str(tenant.pk)
    assert hello["auth"] == "api_key"


def test_a_revoked_key_is_cut_off_while_connected(daphne_server, tenant):
    row, key = create_key(tenant)

    async def scenario():
        sock = await open_socket(daphne_server, key=key)
        await sync_to_async(api_key_revoke)(tenant=tenant, api_key=row, actor=Actor.system("test"))
        return await sock.close_code(timeout=10)

    assert run(scenario()) == 4401


def test_dashboard_session_authenticates_from_the_sites_origin_only(daphne_server, tenant):
    user = UserFactory()
    MembershipFactory(tenant=tenant, user=user, role="viewer")
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    host = daphne_server.url.removeprefix("http://")

    async def scenario():
        own = await open_socket(
            daphne_server, additional_headers={"Cookie": cookie}, origin=f"http://{host}", expect_connected=False
        )
        hello = await own.notice("connected")
        await own.close()
        foreign = await open_socket(
            daphne_server, additional_headers={"Cookie": cookie}, origin="http://evil.example", expect_connected=False
        )
        return hello, await foreign.close_code()

    hello, foreign_code = run(scenario())
    assert hello["auth"] == "session"
    assert hello["tenant"] == str(tenant.pk)
    assert foreign_code == 4403


def test_other_paths_close_with_4404(daphne_server):
    async def scenario():
        async with connect(f"{daphne_server.ws_url}/nope") as connection:
            await connection.recv()
            await connection.wait_closed()
            return connection.close_code

    assert run(scenario()) == 4404


# --- actions ----------------------------------------------------------------------------------


def test_ping_bad_json_and_unknown_actions_keep_the_socket_open(daphne_server, tenant):
    _, key = create_key(tenant)

    async def scenario():
        sock = await open_socket(daphne_server, key=key)
        await sock.connection.send("{not json")
        bad = await sock.notice("error")
        await sock.send({"action": "dance"})
        unknown = await sock.notice("error")
        await sock.send({"action": "resume", "last_event_id": "x"})
        bad_id = await sock.notice("error")
        await sock.send({"action": "ping", "ref": 7})
        pong = await sock.notice("pong")
        await sock.close()
        return bad, unknown, bad_id, pong

    bad, unknown, bad_id, pong = run(scenario())
    assert bad["error"] == "Invalid JSON"
    assert unknown["error"] == "Unknown action"
    assert bad_id["error"] == "Invalid last_event_id"
    assert pong == {"type": "pong", "ref": 7}


def test_events_arrive_as_envelopes_in_order(daphne_server, tenant):
    _, key = create_key(tenant)
    session = _session(tenant)

    async def scenario():
        sock = await open_socket(daphne_server, key=key)
        sent = [await apublish(tenant, "chat_token", {"delta": str(n)}, session=session) for n in range(20)]
        got = [await sock.event() for _ in sent]
        await sock.close()
        return sent, got

    sent, got = run(scenario())
    assert got == sent
    assert set(got[0]) == {"id", "type", "tenant", "session_id", "turn_id", "ts", "data"}


def test_subscribe_narrows_to_the_session_and_tenant_level_events_still_pass(daphne_server, tenant):
    _, key = create_key(tenant)
    mine, other = _session(tenant), _session(tenant)

    async def scenario():
        sock = await open_socket(daphne_server, key=key)
        await sock.send({"action": "subscribe", "session_id": str(mine.pk), "ref": "s1"})
        subscribed = await sock.notice("subscribed")
        await apublish(tenant, "chat_token", {"delta": "other"}, session=other)
        await apublish(tenant, "job_update", {"job": "tenant-level"})
        await apublish(tenant, "chat_token", {"delta": "mine"}, session=mine)
        got = [await sock.event(), await sock.event()]
        await sock.send({"action": "unsubscribe", "session_id": str(mine.pk)})
        await sock.notice("unsubscribed")
        await apublish(tenant, "chat_token", {"delta": "other again"}, session=other)
        after = await sock.event()
        await sock.close()
        return subscribed, got, after

    subscribed, got, after = run(scenario())
    assert subscribed["subscriptions"] == [str(mine.pk)]
    assert subscribed["ref"] == "s1"
    assert [e["data"] for e in got] == [{"job": "tenant-level"}, {"delta": "mine"}]
    assert after["data"] == {"delta": "other again"}


def test_subscribing_to_another_tenants_session_is_refused(daphne_server, tenant, other_tenant):
    _, key = create_key(tenant)
    theirs = _session(other_tenant)

    async def scenario():
        sock = await open_socket(daphne_server, key=key)
        await sock.send({"action": "subscribe", "session_id": str(theirs.pk)})
        refused = await sock.notice("error")
        await sock.send({"action": "subscribe", "session_id": "not-a-uuid"})
        malformed = await sock.notice("error")
        await apublish(other_tenant, "chat_token", {"delta": "secret"}, session=theirs)
        await sock.send({"action": "ping"})
        rest = await sock.quiet(0.5)
        await sock.close()
        return refused, malformed, rest

    refused, malformed, rest = run(scenario())
    assert refused["error"] == "Not found"
    assert malformed["error"] == "Not found"
    # The periodic system_status (SYSTEM_STATUS_SECONDS=1 here) may tick inside the quiet window;
    # it carries only this tenant's figures, so it is not a leak.
    assert [m["type"] for m in rest if m["type"] != "system_status"] == ["pong"]  # no join, nothing of theirs
    assert "secret" not in str(rest)


def test_session_ids_in_the_query_subscribe_from_the_start(daphne_server, tenant, other_tenant):
    _, key = create_key(tenant)
    mine, other = _session(tenant), _session(tenant)
    theirs = _session(other_tenant)

    async def scenario():
        sock = await open_socket(daphne_server, f"?session_id={mine.pk}", key=key)
        await apublish(tenant, "chat_token", {"delta": "no"}, session=other)
        await apublish(tenant, "chat_token", {"delta": "yes"}, session=mine)
        got = await sock.event()
        await sock.close()
        refused = await open_socket(daphne_server, f"?session_id={theirs.pk}", key=key, expect_connected=False)
        return got, await refused.close_code()

    got, code = run(scenario())
    assert got["data"] == {"delta": "yes"}
    assert code == 4400


def test_system_status_comes_to_every_socket(daphne_server, tenant):
    _, key = create_key(tenant)

    async def scenario():
        sock = await open_socket(daphne_server, key=key)
        status = await sock.notice("system_status", timeout=10)
        await sock.close()
        return status

    status = run(scenario())
    assert status["id"] is None
    assert status["tenant"] == str(tenant.pk)
    assert set(status["data"]) == {"workers", "queue_depth", "active_turns"}
    assert status["data"]["active_turns"] == 0


# --- replay -----------------------------------------------------------------------------------


def test_reconnect_with_last_event_id_replays_then_goes_live_without_gaps_or_duplicates(daphne_server, tenant):
    _, key = create_key(tenant)
    session = _session(tenant)
    before = [publish(tenant, "chat_token", {"n": n}, session=session)["id"] for n in range(1200)]
    resume_after = before[99]
    stop = threading.Event()
    during: list[int] = []

    def publish_while_replaying():
        from django.db import connection

        try:
            for n in range(300):
                if stop.is_set():
                    break
                during.append(publish(tenant, "chat_token", {"n": 10_000 + n}, session=session)["id"])
        finally:
            connection.close()

    async def scenario():
        thread = threading.Thread(target=publish_while_replaying)
        sock = await open_socket(daphne_server, f"?last_event_id={resume_after}", key=key)
        thread.start()
        try:
            await sock.notice("replayed", timeout=30)
        finally:
            await asyncio.to_thread(thread.join)
        expected_last = during[-1]
        if not sock.events or sock.events[-1]["id"] != expected_last:
            await sock.events_until(lambda e: e["id"] == expected_last)
        await sock.send({"action": "ping"})
        await sock.notice("pong")
        await sock.close()
        return [e["id"] for e in sock.events]

    got = run(scenario())
    expected = [i for i in before if i > resume_after] + during
    assert len(got) == len(set(got)), "duplicates"
    assert got == expected


def test_resume_action_replays_from_the_given_id(daphne_server, tenant):
    _, key = create_key(tenant)
    ids = [publish(tenant, "job_update", {"n": n})["id"] for n in range(5)]

    async def scenario():
        sock = await open_socket(daphne_server, key=key)
        await sock.send({"action": "resume", "last_event_id": ids[1]})
        done = await sock.notice("replayed")
        await sock.close()
        return [e["id"] for e in sock.events], done

    got, done = run(scenario())
    assert got == ids[2:]
    assert done["count"] == 3
    assert done["last_event_id"] == ids[-1]
    assert done["truncated"] is False


# --- backpressure -----------------------------------------------------------------------------


def test_a_stalled_client_overflows_and_resumes_while_a_fast_one_gets_everything(daphne_server, tenant):
    """The slow socket stops reading (a tiny receive buffer, a client queue of one): the server
    fills the transport, then its 64-message outbox, then says overflow and closes 4408. The
    fast socket of the same tenant receives every event meanwhile, and the publisher never
    waits. Resuming from `resume_from` delivers the rest exactly."""
    _, key = create_key(tenant)
    # Enough to fill the kernel's socket buffers (they autotune up to 4 MB here) and Twisted's.
    padding = "x" * 16_000
    count = 600

    async def scenario():
        host, port = daphne_server.url.removeprefix("http://").split(":")
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect((host, int(port)))
        slow = await open_socket(daphne_server, key=key, sock=raw, max_queue=1)
        fast = await open_socket(daphne_server, key=key)
        fast_reading = asyncio.create_task(fast.events_until(lambda _e: len(fast.events) == count, timeout=50))
        published = []
        for n in range(count):
            published.append((await apublish(tenant, "chat_token", {"n": n, "pad": padding}))["id"])
        fast_ids = [e["id"] for e in await fast_reading]
        await fast.close()
        # The slow client reads again: what was in flight, then the overflow notice and 4408.
        overflow = await slow.notice("overflow", timeout=30)
        code = await slow.close_code()
        slow_ids = [e["id"] for e in slow.events]
        resumed = await open_socket(daphne_server, f"?last_event_id={overflow['resume_from']}", key=key)
        await resumed.notice("replayed", timeout=30)
        await resumed.close()
        return published, fast_ids, slow_ids, overflow, code, [e["id"] for e in resumed.events]

    published, fast_ids, slow_ids, overflow, code, resumed_ids = run(scenario())
    assert fast_ids == published
    assert code == 4408
    assert len(slow_ids) < count
    assert slow_ids == published[: len(slow_ids)]
    assert overflow["resume_from"] == slow_ids[-1]
    assert slow_ids + resumed_ids == published


# --- tenants ----------------------------------------------------------------------------------


def test_tenant_b_never_receives_tenant_a_events_under_load(daphne_server):
    tenant_a, tenant_b = TenantFactory(), TenantFactory()
    _, key_a = create_key(tenant_a)
    _, key_b = create_key(tenant_b)
    per_tenant, sockets_each = 150, 10

    def burst(tenant, label):
        from django.db import connection

        try:
            return [publish(tenant, "chat_token", {"from": label, "n": n})["id"] for n in range(per_tenant)]
        finally:
            connection.close()

    async def scenario():
        socks_a = [await open_socket(daphne_server, key=key_a) for _ in range(sockets_each)]
        socks_b = [await open_socket(daphne_server, key=key_b) for _ in range(sockets_each)]
        ids_a, ids_b = await asyncio.gather(
            asyncio.to_thread(burst, tenant_a, "a"), asyncio.to_thread(burst, tenant_b, "b")
        )
        for sock in socks_a:
            await sock.events_until(lambda e, last=ids_a[-1]: e["id"] == last)
        for sock in socks_b:
            await sock.events_until(lambda e, last=ids_b[-1]: e["id"] == last)
        for sock in socks_a + socks_b:
            await sock.close()
        return socks_a, socks_b, ids_a, ids_b

    socks_a, socks_b, ids_a, ids_b = run(scenario())
    for sock in socks_a:
        assert [e["id"] for e in sock.events] == ids_a
        assert {e["tenant"] for e in sock.events} == {str(tenant_a.pk)}
    for sock in socks_b:
        assert [e["id"] for e in sock.events] == ids_b
        assert {e["data"]["from"] for e in sock.events} == {"b"}
    assert pusher.dropped == 0
    assert Event.objects.filter(tenant=tenant_b, data__from="a").count() == 0
