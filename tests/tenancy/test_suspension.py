"""Suspending a tenant stops its turns (queued ones never run, running ones at their next
checkpoint) and closes its live sockets at once, not at the next credential recheck."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations.models import ChatSession, Message, Turn
from apps.conversations.services import tenant_suspend_and_stop
from apps.conversations.turns import services as engine
from apps.events.models import Event
from apps.tenancy.models import AuditLog, Tenant
from apps.tenancy.principal import Actor
from apps.tenancy.services import tenant_suspend
from tests.conftest import create_key
from tests.events import live
from tests.events.live import open_socket
from tests.stubs.model_server import Reply

pytestmark = pytest.mark.usefixtures("fast_providers")


@pytest.fixture(scope="session")
def daphne_slow_recheck(django_db_setup, django_db_blocker):
    # Rechecks far apart: a close within seconds can only come from the suspension itself.
    yield from live.serve_daphne({"WS_AUTH_RECHECK_SECONDS": "600"})


@pytest.fixture
def stub_agent(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    return Agent.objects.create(tenant=tenant, name="stub-agent", guide_model=model)


def _queued_turn(tenant, agent) -> Turn:
    # Written directly, as message_post does, without enqueueing: the test runs the worker's part.
    session = ChatSession.objects.create(tenant=tenant, agent=agent)
    parts = [{"type": "text", "text": "hi"}]
    question = Message.objects.create(tenant=tenant, session=session, role="user", parts=parts)
    return Turn.objects.create(tenant=tenant, session=session, agent=agent, input_message=question)


def _last_event(turn) -> Event:
    return Event.objects.filter(turn_id=turn.pk).order_by("-id").first()


@pytest.mark.django_db(transaction=True)
def test_a_running_turn_stops_at_its_next_checkpoint_with_the_reason(tenant, stub_agent, model_server):
    model_server.script([Reply(chunks=[f"word{i} " for i in range(200)], chunk_delay=0.02)])
    turn = _queued_turn(tenant, stub_agent)

    def suspend_once_it_streams():
        # Once the answer is streaming (a slow machine may take longer than any fixed delay to claim).
        deadline = time.monotonic() + 20
        while not Event.objects.filter(turn_id=turn.pk, type="chat_token").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        tenant_suspend_and_stop(tenant=tenant, actor=Actor.system("test"), reason="unpaid")
        connection.close()

    suspender = threading.Thread(target=suspend_once_it_streams)
    started = time.monotonic()
    suspender.start()
    engine.turn_execute(turn_id=str(turn.pk))  # the worker's part, in this thread
    elapsed = time.monotonic() - started
    suspender.join()
    turn.refresh_from_db()
    assert turn.status == Turn.Status.CANCELLED
    assert turn.error == "tenant suspended"
    assert elapsed < 3  # the whole answer would stream for 4 s
    assert len(turn.output_message.text.split()) < 200  # the partial answer is kept
    last = _last_event(turn)
    assert last.type == "turn_cancelled"
    assert last.data["reason"] == "tenant suspended"


@pytest.mark.django_db
def test_a_queued_turn_is_cancelled_and_never_reaches_the_model(tenant, stub_agent, model_server):
    turn = _queued_turn(tenant, stub_agent)
    assert tenant_suspend_and_stop(tenant=tenant, actor=Actor.system("test"), reason="abuse") is True
    turn.refresh_from_db()
    assert turn.status == Turn.Status.CANCELLED
    assert turn.error == "tenant suspended"
    assert _last_event(turn).data == {"partial_text": "", "reason": "tenant suspended"}
    assert engine.turn_execute(turn_id=str(turn.pk)).state == "skipped"  # a redelivered task
    assert model_server.requests == []
    audit = AuditLog.objects.get(tenant=tenant, action="tenant.suspended")
    assert audit.data == {"reason": "abuse"}


@pytest.mark.django_db
def test_the_claim_refuses_a_suspended_tenants_turn(tenant, stub_agent, model_server):
    # Suspended through tenancy alone (no turn was active then); a turn queued afterwards by
    # any path still never runs.
    tenant_suspend(tenant=tenant, actor=Actor.system("test"), reason="test")
    turn = _queued_turn(tenant, stub_agent)
    assert engine.turn_execute(turn_id=str(turn.pk)).state == "skipped"
    turn.refresh_from_db()
    assert turn.status == Turn.Status.CANCELLED
    assert turn.error == "tenant suspended"
    assert model_server.requests == []


@pytest.mark.django_db
def test_the_command_suspends_and_reactivates(tenant, stub_agent, capsys):
    turn = _queued_turn(tenant, stub_agent)
    call_command("suspend_tenant", tenant.slug, "--reason", "chargeback")
    tenant.refresh_from_db()
    turn.refresh_from_db()
    assert tenant.status == Tenant.Status.SUSPENDED
    assert tenant.suspended_reason == "chargeback"
    assert turn.status == Turn.Status.CANCELLED
    call_command("suspend_tenant", tenant.slug, "--reactivate")
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.ACTIVE
    assert "Reactivated" in capsys.readouterr().out


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_live_socket_is_closed_with_4401_the_moment_the_tenant_is_suspended(daphne_slow_recheck, tenant):
    _, key = create_key(tenant)

    async def scenario():
        sock = await open_socket(daphne_slow_recheck, key=key)
        started = time.monotonic()
        await sync_to_async(tenant_suspend_and_stop)(tenant=tenant, actor=Actor.system("test"), reason="test")
        code = await sock.close_code(timeout=10)
        return code, time.monotonic() - started

    code, elapsed = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert code == 4401
    assert elapsed < 10  # the recheck is 600 s away
