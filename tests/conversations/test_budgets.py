"""Budgets as reservations: concurrent turns, the 402 that names the budget, release after a
provider failure, expiry of a dead worker's reservation, per-key budgets.

Turns run through the real engine against the stub model server (openai SDK on loopback);
the stub model's price comes from its catalog row, and the stub reports usage."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations import budgets, engine, services
from apps.conversations.models import ChatSession, Message, Turn
from apps.tenancy.models import ApiKey
from tests.conftest import create_key
from tests.stubs.model_server import Reply

pytestmark = pytest.mark.usefixtures("fast_providers")

# With no input price and the output estimated at the agent's whole cap, a call's estimate is
# exactly OUTPUT_CAP tokens at $100/Mtok = $0.10, and the stub reports that many output tokens:
# real cost = estimate, so exactly five calls fit in $0.50.
OUTPUT_CAP = 1000
CALL_USD = Decimal("0.1")
FULL_USAGE = (5, OUTPUT_CAP)


@pytest.fixture
def priced_agent(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    model.input_per_mtok, model.output_per_mtok = Decimal("0"), Decimal("100")
    model.save()
    return Agent.objects.create(tenant=tenant, name="priced", guide_model=model, max_output_tokens=OUTPUT_CAP)


def set_budget(tenant, usd) -> None:
    tenant.settings = {**(tenant.settings or {}), "monthly_budget_usd": str(usd)}
    tenant.save()


def queued_turn(tenant, agent, text="hello", api_key=None) -> Turn:
    """A turn as message_post leaves it, without running it (the test decides when and where)."""
    session = ChatSession.objects.create(tenant=tenant, agent=agent)
    message = Message.objects.create(
        tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": text}]
    )
    return Turn.objects.create(tenant=tenant, session=session, agent=agent, input_message=message, api_key=api_key)


def run(turn: Turn) -> Turn:
    engine.turn_execute(turn_id=str(turn.pk))
    turn.refresh_from_db()
    return turn


def running(turn: Turn) -> Turn:
    """Claimed as a worker would (running, attempt 1), ready to reserve."""
    Turn.objects.filter(pk=turn.pk).update(status=Turn.Status.RUNNING, attempt=1)
    return Turn.objects.select_related("tenant", "agent", "api_key").get(pk=turn.pk)


@pytest.fixture
def pool_for_twenty_workers():
    """Twenty worker threads in one process share its connection pool (10 by default, as a
    worker process needs): give it room for all of them, as twenty worker processes would have."""
    options = connection.settings_dict["OPTIONS"]
    before = options.get("pool")
    if not before:
        yield
        return
    connection.close()
    connection.close_pool()
    options["pool"] = {**before, "max_size": 24, "timeout": 60}
    yield
    connection.close()
    connection.close_pool()
    options["pool"] = before


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("pool_for_twenty_workers")
def test_twenty_concurrent_turns_spend_at_most_the_budget_plus_one_call(tenant, priced_agent, model_server):
    # Given a budget that fits five calls, and a model slow enough that all twenty overlap
    set_budget(tenant, 5 * CALL_USD)
    model_server.default_reply = Reply(text="one two three", chunk_delay=0.1, usage=FULL_USAGE)
    turns = [queued_turn(tenant, priced_agent, f"question {i}") for i in range(20)]
    start = threading.Barrier(len(turns))
    errors: list[BaseException] = []

    def worker(turn_id: str) -> None:
        try:
            start.wait()
            engine.turn_execute(turn_id=turn_id)
        except Exception as exc:  # noqa: BLE001 - surfaced below; a thread's exception is otherwise lost
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    # When twenty workers run them at once, each with its own database connection
    threads = [threading.Thread(target=worker, args=(str(t.pk),)) for t in turns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then the settled spend stays within the budget plus one call's estimate
    assert errors == []
    done = list(Turn.objects.filter(pk__in=[t.pk for t in turns]))
    settled = sum((t.cost_usd for t in done), Decimal("0"))
    assert settled <= 5 * CALL_USD + CALL_USD
    completed = [t for t in done if t.status == Turn.Status.COMPLETED]
    refused = [t for t in done if t.status == Turn.Status.FAILED]
    assert len(completed) == 5  # real cost equals the estimate, so exactly five fit
    assert len(refused) == 15
    assert all("this tenant's monthly budget of $0.50 is spent" in t.error for t in refused)
    assert all(t.metadata["budget_exhausted"] == budgets.SCOPE_TENANT for t in refused)
    assert len(model_server.requests) == 5  # a refused call never reaches the provider
    assert all(t.reserved_usd == 0 and t.reserved_until is None for t in done)


@pytest.mark.django_db
def test_post_answers_402_naming_the_spent_budget(tenant, priced_agent, owner_client, model_server):
    model_server.default_reply = Reply(text="ok", usage=FULL_USAGE)
    set_budget(tenant, CALL_USD)
    assert run(queued_turn(tenant, priced_agent)).status == Turn.Status.COMPLETED
    session = owner_client.post("/api/sessions", {"agent": priced_agent.name}, format="json").json()["id"]

    response = owner_client.post(f"/api/sessions/{session}/messages", {"text": "again"}, format="json")

    assert response.status_code == 402
    body = response.json()
    assert body["error"] == "Budget exhausted"
    assert body["budget"] == "tenant_monthly"
    assert "monthly budget of $0.10" in body["message"]
    assert "monthly_budget_usd" in body["message"]  # how to raise it
    for path, payload in (("/api/agent/message", {"text": "hi"}), ("/api/tasks", {"topic": "hi"})):
        refused = owner_client.post(path, payload, format="json")
        assert refused.status_code == 402, path
        assert refused.json()["budget"] == "tenant_monthly"


@pytest.mark.django_db(transaction=True)  # the queued turn runs (eagerly) as the POST commits
def test_sync_face_answers_402_when_the_reservation_is_refused_in_the_worker(
    tenant, priced_agent, owner_client, model_server, settings
):
    settings.SYNC_TURN_TIMEOUT_SECONDS = 10
    # Room at the POST (nothing spent yet) but not for one call's estimate
    set_budget(tenant, CALL_USD / 2)
    response = owner_client.post("/api/agent/message", {"text": "hi", "agent": priced_agent.name}, format="json")
    assert response.status_code == 402
    assert response.json()["budget"] == "tenant_monthly"
    assert "next model call needs about $0.100000" in response.json()["message"]
    assert model_server.requests == []


@pytest.mark.django_db
def test_reservation_is_released_after_a_provider_failure(tenant, priced_agent, model_server):
    set_budget(tenant, CALL_USD)
    model_server.script([Reply(status=500, error="upstream down")])
    failed = run(queued_turn(tenant, priced_agent))
    assert failed.status == Turn.Status.FAILED
    assert failed.cost_usd == 0
    assert failed.reserved_usd == 0
    assert failed.reserved_until is None

    # The whole budget is still there for the next turn
    model_server.default_reply = Reply(text="ok", usage=FULL_USAGE)
    assert run(queued_turn(tenant, priced_agent)).status == Turn.Status.COMPLETED


@pytest.mark.django_db
def test_release_frees_the_budget_for_another_turn(tenant, priced_agent):
    set_budget(tenant, CALL_USD)
    first, second = running(queued_turn(tenant, priced_agent)), running(queued_turn(tenant, priced_agent))
    candidate = _candidate(priced_agent)
    assert budgets.budget_reserve(
        tenant=tenant, turn=first, agent=priced_agent, candidate=candidate, estimate_usd=CALL_USD
    )
    with pytest.raises(budgets.BudgetExhausted):
        budgets.budget_reserve(
            tenant=tenant, turn=second, agent=priced_agent, candidate=candidate, estimate_usd=CALL_USD
        )
    budgets.budget_release(turn=first)
    assert budgets.budget_reserve(
        tenant=tenant, turn=second, agent=priced_agent, candidate=candidate, estimate_usd=CALL_USD
    )


@pytest.mark.django_db
def test_an_expired_reservation_frees_the_budget(tenant, priced_agent):
    # Given a worker that reserved the whole budget and died (never settled, never released)
    set_budget(tenant, CALL_USD)
    dead, live = running(queued_turn(tenant, priced_agent)), running(queued_turn(tenant, priced_agent))
    candidate = _candidate(priced_agent)
    budgets.budget_reserve(tenant=tenant, turn=dead, agent=priced_agent, candidate=candidate, estimate_usd=CALL_USD)
    with pytest.raises(budgets.BudgetExhausted) as refused:
        budgets.budget_reserve(tenant=tenant, turn=live, agent=priced_agent, candidate=candidate, estimate_usd=CALL_USD)
    assert refused.value.scope == budgets.SCOPE_TENANT

    # When its reservation's time has passed
    Turn.objects.filter(pk=dead.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))

    # Then it no longer counts, and the settled spend is what the Turn rows say
    assert budgets.budget_reserve(
        tenant=tenant, turn=live, agent=priced_agent, candidate=candidate, estimate_usd=CALL_USD
    )
    budgets.budget_settle(turn=live, cost_usd=Decimal("0.04"))
    assert budgets.tenant_month_spend(tenant=tenant) == Decimal("0.04")


@pytest.mark.django_db(transaction=True)  # the queued turns run (eagerly) as the POSTs commit
def test_api_key_monthly_budget_refuses_that_keys_turns_only(tenant, priced_agent, make_client, model_server, settings):
    settings.SYNC_TURN_TIMEOUT_SECONDS = 10
    model_server.default_reply = Reply(text="ok", usage=FULL_USAGE)
    owner = make_client(tenant)
    capped = make_client(tenant, role="member")
    key_row = ApiKey.objects.get(tenant=tenant, prefix=capped.api_key.split(".")[0])

    # An admin gives the key a budget of one call
    response = owner.patch(f"/api/keys/{key_row.pk}", {"monthly_budget_usd": "0.10"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["monthly_budget_usd"] == "0.10"
    unknown = owner.patch(f"/api/keys/{key_row.pk}", {"name": "renamed"}, format="json")
    assert unknown.status_code == 400

    # The key's first turn records the key and spends its budget
    session = capped.post("/api/sessions", {"agent": priced_agent.name}, format="json").json()["id"]
    first = capped.post("/api/agent/message", {"text": "hi", "sessionId": session}, format="json")
    assert first.status_code == 200, first.json()
    assert Turn.objects.filter(api_key=key_row, status=Turn.Status.COMPLETED).count() == 1

    # Its next one is refused, naming the key's budget; the tenant's other callers go on
    again = capped.post(f"/api/sessions/{session}/messages", {"text": "again"}, format="json")
    assert again.status_code == 402
    assert again.json()["budget"] == "api_key_monthly"
    assert key_row.prefix in again.json()["message"]
    assert f"PATCH /api/keys/{key_row.pk}" in again.json()["message"]
    other = owner.post("/api/agent/message", {"text": "hi", "agent": priced_agent.name}, format="json")
    assert other.status_code == 200


@pytest.mark.django_db
def test_api_key_budget_is_set_at_creation_by_admins_only(tenant, make_client):
    admin = make_client(tenant, role="admin")
    created = admin.post("/api/keys", {"name": "ci", "monthly_budget_usd": "2.50"}, format="json")
    assert created.status_code == 201, created.json()
    assert ApiKey.objects.get(pk=created.json()["id"]).monthly_budget_usd == Decimal("2.50")
    member = make_client(tenant, role="member")
    response = member.patch(f"/api/keys/{created.json()['id']}", {"monthly_budget_usd": None}, format="json")
    assert response.status_code == 403


@pytest.mark.django_db
def test_agent_per_turn_limit_counts_every_call_of_the_turn(tenant, priced_agent, model_server):
    # Room for one call per turn: the second step of a tool-using turn is refused
    priced_agent.model_policy = {"max_cost_usd": float(CALL_USD)}
    priced_agent.enabled_tools = ["calculator"]
    priced_agent.save()
    model_server.script(
        [Reply(tool_calls=[("calculator", {"expression": "2+2"})], usage=FULL_USAGE), Reply(text="4", usage=FULL_USAGE)]
    )
    turn = run(queued_turn(tenant, priced_agent, "what is 2+2?"))
    assert turn.status == Turn.Status.FAILED
    assert "per turn (model_policy.max_cost_usd)" in turn.error
    assert turn.metadata["budget_exhausted"] == budgets.SCOPE_AGENT_TURN
    assert turn.cost_usd == CALL_USD  # the first call, settled
    assert len(model_server.requests) == 1


def _candidate(agent):
    from apps.agents.routing import select_model

    return select_model(agent=agent, text="hi").chosen


def test_message_post_records_the_callers_api_key(db, tenant, priced_agent):
    key_row, _ = create_key(tenant)
    session = services.session_create(tenant=tenant, agent=priced_agent)
    # Not run here (no on_commit capture): the turn row is written in the same transaction.
    _, turn = services.message_post(
        tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": "hi"}], api_key=key_row
    )
    assert Turn.objects.get(pk=turn.pk).api_key_id == key_row.pk
