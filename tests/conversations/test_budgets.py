"""Budgets as reservations: concurrent turns, the 402 that names the budget, release after a
provider failure, expiry of a dead worker's reservation, per-key budgets, the operator's cap of
a platform provider, and the monthly ledger the settled spend is read from.

Turns run through the real engine against the stub model server (openai SDK on loopback);
the stub model's price comes from its catalog row, and the stub reports usage."""

from __future__ import annotations

import importlib
import threading
import time
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from apps.agents import services as agent_services
from apps.agents.models import Agent, CatalogModel, PlatformSpend, ProviderKind
from apps.agents.selectors import platform_spend_this_month
from apps.conversations import budgets, cancellation, services
from apps.conversations.models import ChatSession, Message, SpendLedger, Turn
from apps.conversations.turns import services as engine
from apps.tenancy.models import ApiKey
from apps.tenancy.principal import Actor
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


@pytest.fixture
def platform_agent(tenant, model_server):
    """An agent on a tenant's link to an operator's platform provider (the stub is its endpoint),
    priced like `priced_agent`."""
    actor = Actor.system("test")
    platform = agent_services.platform_provider_save(
        actor=actor,
        platform_provider=None,
        name="opcloud",
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=model_server.openai_base_url,
        options={},
        api_key="op-platform-key-0123456789",
    )
    link = agent_services.platform_provider_link(
        tenant=tenant, actor=actor, platform_provider=platform, models=["stub-small"]
    )
    model = CatalogModel.objects.get(provider=link, model_id="stub-small")
    model.input_per_mtok, model.output_per_mtok = Decimal("0"), Decimal("100")
    model.save()
    agent = Agent.objects.create(tenant=tenant, name="on-platform", guide_model=model, max_output_tokens=OUTPUT_CAP)
    return SimpleNamespace(agent=agent, platform=platform, link=link)


def set_platform_cap(tenant, platform, usd) -> None:
    agent_services.platform_access_set(tenant=tenant, platform_provider=platform, allowed=True, monthly_cap_usd=usd)


def run_concurrently(turns: list[Turn]) -> list[BaseException]:
    """Each turn on its own thread (its own database connection), all started at once."""
    start = threading.Barrier(len(turns))
    errors: list[BaseException] = []

    def worker(turn_id: str) -> None:
        try:
            start.wait()
            engine.turn_execute(turn_id=turn_id)
        except Exception as exc:  # noqa: BLE001 - surfaced by the caller; a thread's exception is otherwise lost
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=worker, args=(str(t.pk),)) for t in turns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


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

    # When twenty workers run them at once, each with its own database connection
    errors = run_concurrently(turns)

    # Then the settled spend stays within the budget plus one call's estimate
    assert errors == []
    done = list(Turn.objects.filter(pk__in=[t.pk for t in turns]))
    settled = sum((t.cost_usd for t in done), Decimal("0"))
    assert settled <= 5 * CALL_USD + CALL_USD
    assert budgets.tenant_month_spend(tenant=tenant) == settled  # the ledger the next check reads
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


# --- the platform provider's cap -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("pool_for_twenty_workers")
def test_twenty_concurrent_turns_on_a_platform_provider_spend_at_most_its_cap_plus_one_call(
    tenant, platform_agent, model_server
):
    # Given the operator's cap on this tenant of five calls, no budget of the tenant's own
    set_platform_cap(tenant, platform_agent.platform, 5 * CALL_USD)
    model_server.default_reply = Reply(text="one two three", chunk_delay=0.1, usage=FULL_USAGE)
    turns = [queued_turn(tenant, platform_agent.agent, f"question {i}") for i in range(20)]

    # When twenty workers run them at once
    errors = run_concurrently(turns)

    # Then the platform spend stays within the cap plus one call's estimate
    assert errors == []
    done = list(Turn.objects.filter(pk__in=[t.pk for t in turns]))
    spent = platform_spend_this_month(tenant, platform_agent.platform)
    assert spent <= 5 * CALL_USD + CALL_USD
    assert spent == sum((t.cost_usd for t in done), Decimal("0"))  # settled with the Turn rows
    completed = [t for t in done if t.status == Turn.Status.COMPLETED]
    refused = [t for t in done if t.status == Turn.Status.FAILED]
    assert len(completed) == 5
    assert len(refused) == 15
    assert all(t.metadata["budget_exhausted"] == budgets.SCOPE_PLATFORM for t in refused)
    assert all("monthly cap of $0.50" in t.error and "'opcloud'" in t.error for t in refused)
    assert len(model_server.requests) == 5
    assert PlatformSpend.objects.get(tenant=tenant, platform_provider=platform_agent.platform).calls == 5


@pytest.mark.django_db(transaction=True)  # the queued turn runs (eagerly) as the POST commits
def test_sync_face_answers_402_naming_the_platform_cap(tenant, platform_agent, owner_client, model_server, settings):
    settings.SYNC_TURN_TIMEOUT_SECONDS = 10
    set_platform_cap(tenant, platform_agent.platform, CALL_USD / 2)
    response = owner_client.post(
        "/api/agent/message", {"text": "hi", "agent": platform_agent.agent.name}, format="json"
    )
    assert response.status_code == 402
    assert response.json()["budget"] == "platform_provider_monthly"
    assert "Ask the operator to raise the cap" in response.json()["message"]
    assert model_server.requests == []


@pytest.mark.django_db
def test_platform_cap_counts_other_turns_reservations_on_any_link_to_it(tenant, platform_agent):
    set_platform_cap(tenant, platform_agent.platform, CALL_USD)
    first, second = (running(queued_turn(tenant, platform_agent.agent)) for _ in range(2))
    candidate = _candidate(platform_agent.agent)
    reserve = {"tenant": tenant, "agent": platform_agent.agent, "candidate": candidate, "estimate_usd": CALL_USD}
    assert budgets.budget_reserve(turn=first, **reserve)
    with pytest.raises(budgets.BudgetExhausted) as refused:
        budgets.budget_reserve(turn=second, **reserve)
    assert refused.value.scope == budgets.SCOPE_PLATFORM
    # A tenant's own provider is not under the operator's cap
    assert budgets.platform_scope_for(_candidate(_own_provider_agent(tenant)), tenant) is None


@pytest.mark.django_db
def test_no_cap_means_no_platform_scope_and_no_reservation(tenant, platform_agent):
    turn = running(queued_turn(tenant, platform_agent.agent))
    candidate = _candidate(platform_agent.agent)
    assert budgets.platform_scope_for(candidate, tenant) is None
    assert (
        budgets.budget_reserve(
            tenant=tenant, turn=turn, agent=platform_agent.agent, candidate=candidate, estimate_usd=CALL_USD
        )
        is None
    )
    # Settling still meters the platform provider's month
    assert budgets.budget_settle(turn=turn, cost_usd=Decimal("0.03"), provider=candidate.provider)
    assert platform_spend_this_month(tenant, platform_agent.platform) == Decimal("0.03")


def _own_provider_agent(tenant) -> Agent:
    from apps.agents.models import Provider

    provider = Provider.objects.create(tenant=tenant, kind=ProviderKind.OFFLINE, name="own")
    model = CatalogModel.objects.create(tenant=tenant, provider=provider, model_id="own-model")
    return Agent.objects.create(tenant=tenant, name="own", guide_model=model)


# --- the monthly ledger --------------------------------------------------------------------------


def _cancel_once_streaming(turn: Turn, model_server) -> threading.Thread:
    """Ask the running turn to stop as soon as the provider has the request (mid-stream)."""

    already = len(model_server.requests)  # earlier turns' requests do not count

    def cancel() -> None:
        deadline = time.monotonic() + 10
        while len(model_server.requests) <= already and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # a few chunks in
        cancellation.request(turn.pk)

    thread = threading.Thread(target=cancel)
    thread.start()
    return thread


@pytest.mark.django_db
def test_ledger_equals_the_turns_cost_after_completed_failed_and_cancelled_turns(tenant, priced_agent, model_server):
    key_row, _ = create_key(tenant)
    # completed on one call; completed in two calls (a tool step); failed at the provider;
    # cancelled mid-stream (charged for what was streamed); and one started with an API key
    priced_agent.enabled_tools = ["calculator"]
    priced_agent.save()
    model_server.script(
        [
            Reply(text="plain", usage=FULL_USAGE),
            Reply(tool_calls=[("calculator", {"expression": "2+2"})], usage=(5, 300)),
            Reply(text="4", usage=(5, 200)),
            Reply(status=500, error="upstream down"),
            Reply(chunks=[f"word{i} " for i in range(100)], chunk_delay=0.02),
            Reply(text="keyed", usage=(5, 400)),
        ]
    )
    statuses = []
    for text, key in (("plain", None), ("2+2?", None), ("fails", None)):
        statuses.append(run(queued_turn(tenant, priced_agent, text, api_key=key)).status)
    streaming = queued_turn(tenant, priced_agent, "long answer")
    canceller = _cancel_once_streaming(streaming, model_server)
    statuses.append(run(streaming).status)
    canceller.join()
    statuses.append(run(queued_turn(tenant, priced_agent, "keyed", api_key=key_row)).status)
    assert statuses == ["completed", "completed", "failed", "cancelled", "completed"]

    turns = Turn.objects.filter(tenant=tenant)
    cancelled = turns.get(status=Turn.Status.CANCELLED)
    assert cancelled.cost_usd > 0  # the provider bills what it streamed
    total = sum((t.cost_usd for t in turns), Decimal("0"))
    assert total == CALL_USD + Decimal("0.05") + cancelled.cost_usd + Decimal("0.04")
    assert budgets.tenant_month_spend(tenant=tenant) == total
    assert budgets.api_key_month_spend(api_key=key_row) == Decimal("0.04")
    rows = {row.api_key_id: row for row in SpendLedger.objects.filter(tenant=tenant)}
    assert set(rows) == {None, key_row.pk}
    assert rows[None].calls == 4  # plain, two of the tool turn, the cancelled one; the failure cost nothing
    assert rows[key_row.pk].calls == 1


@pytest.mark.django_db
def test_settle_after_losing_the_turn_charges_but_keeps_the_new_attempts_reservation(tenant, priced_agent):
    set_budget(tenant, 10 * CALL_USD)
    stale = running(queued_turn(tenant, priced_agent))
    candidate = _candidate(priced_agent)
    budgets.budget_reserve(tenant=tenant, turn=stale, agent=priced_agent, candidate=candidate, estimate_usd=CALL_USD)
    # Another worker took the turn over (attempt 2) and reserved for its own call
    Turn.objects.filter(pk=stale.pk).update(attempt=2)
    current = Turn.objects.select_related("tenant", "agent").get(pk=stale.pk)
    budgets.budget_reserve(tenant=tenant, turn=current, agent=priced_agent, candidate=candidate, estimate_usd=CALL_USD)

    assert budgets.budget_settle(turn=stale, cost_usd=Decimal("0.07")) is False

    after = Turn.objects.get(pk=stale.pk)
    assert after.cost_usd == Decimal("0.07")  # the provider billed the stale call all the same
    assert budgets.tenant_month_spend(tenant=tenant) == Decimal("0.07")
    assert after.reserved_usd == CALL_USD  # attempt 2's reservation stays
    assert after.reserved_until is not None


@pytest.mark.django_db
def test_ledger_month_is_the_month_the_call_is_settled_in(tenant, priced_agent):
    turn = running(queued_turn(tenant, priced_agent))
    budgets.budget_settle(turn=turn, cost_usd=Decimal("0.02"))
    assert SpendLedger.objects.get(tenant=tenant).month == budgets.ledger_month()
    next_month = (budgets.month_start() + timedelta(days=32)).replace(day=1)
    assert budgets.tenant_month_spend(tenant=tenant, now=next_month) == 0


@pytest.mark.django_db
def test_deleting_an_api_key_with_spend_is_refused_so_the_tenant_keeps_its_spend(tenant, priced_agent):
    from django.db.models import RestrictedError

    key_row, _ = create_key(tenant)
    turn = running(queued_turn(tenant, priced_agent, api_key=key_row))
    budgets.budget_settle(turn=turn, cost_usd=Decimal("0.02"))
    with pytest.raises(RestrictedError):
        key_row.delete()
    assert budgets.tenant_month_spend(tenant=tenant) == Decimal("0.02")


@pytest.mark.django_db
def test_live_reservations_are_read_from_the_partial_index(tenant, priced_agent):
    # Given a month of turns of which one holds a reservation, and fresh planner statistics
    set_budget(tenant, CALL_USD * 10)
    holder = running(queued_turn(tenant, priced_agent))
    budgets.budget_reserve(
        tenant=tenant, turn=holder, agent=priced_agent, candidate=_candidate(priced_agent), estimate_usd=CALL_USD
    )
    Turn.objects.bulk_create(
        [
            Turn(tenant=tenant, session=holder.session, agent=priced_agent, input_message=holder.input_message)
            for _ in range(3000)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Turn._meta.db_table}")

        # Then the budget check's query reads the partial index for live reservations, not the
        # month's turns: the `reserved_until > now` filter implies its `reserved_until IS NOT NULL`
        sql, params = budgets.spend_query([budgets.tenant_scope(tenant)], timezone.now())
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "turn_tenant_reserved" in plan
    assert "turn_tenant_recent" not in plan


@pytest.mark.django_db
def test_backfill_builds_the_ledger_from_the_turn_rows(tenant, other_tenant, priced_agent):
    migration = importlib.import_module("apps.conversations.migrations.0004_spend_ledger")
    key_row, _ = create_key(tenant)
    last_month = budgets.month_start() - timedelta(days=1)
    spend = [
        (tenant, None, Decimal("0.10"), None),
        (tenant, None, Decimal("0.05"), None),
        (tenant, key_row, Decimal("0.20"), None),
        (tenant, None, Decimal("1.00"), last_month),
        (other_tenant, None, Decimal("0.30"), None),
        (tenant, None, Decimal("0"), None),  # free turns make no row
    ]
    for owner, key, cost, created_at in spend:
        agent = priced_agent if owner == tenant else Agent.objects.create(tenant=owner, name="other")
        turn = queued_turn(owner, agent, api_key=key)
        Turn.objects.filter(pk=turn.pk).update(
            cost_usd=cost, step_count=1, **({"created_at": created_at} if created_at else {})
        )

    from django.apps import apps

    migration.backfill_spend_ledger(apps, SimpleNamespace(connection=connection))
    migration.backfill_spend_ledger(apps, SimpleNamespace(connection=connection))  # idempotent

    this_month = budgets.ledger_month()
    rows = {(r.tenant_id, r.api_key_id, r.month): (r.cost_usd, r.calls) for r in SpendLedger.objects.all()}
    assert rows == {
        (tenant.pk, None, this_month): (Decimal("0.15"), 2),
        (tenant.pk, key_row.pk, this_month): (Decimal("0.20"), 1),
        (tenant.pk, None, budgets.ledger_month(last_month)): (Decimal("1.00"), 1),
        (other_tenant.pk, None, this_month): (Decimal("0.30"), 1),
    }
    assert budgets.tenant_month_spend(tenant=tenant) == Decimal("0.35")
