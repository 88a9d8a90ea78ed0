"""What a turn costs in queries and round trips, pinned, so a change that adds one shows up here
(docs/agents.md, "Performance of a turn", says what each one is); and the per-process cache of
provider clients: reused while the provider is unchanged, never shared across providers."""

from __future__ import annotations

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.agents.providers.registry import client_for
from apps.agents.services.providers import provider_update
from apps.conversations import services
from apps.conversations.models import Turn
from apps.conversations.turns import services as turns
from apps.conversations.turns.context import build_context
from apps.memory.models import MemoryEntry, MemoryKind
from apps.memory.services import memory_entries_embed
from apps.tenancy.principal import Actor
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_providers")]

# The budgets. Raise one only with the reason in docs/agents.md ("Performance of a turn").
# POST: API key, session (with its agent), then message + session activity + the session's
# active turns (ordering: a turn_queued event when it waits) + turn in one transaction (a
# savepoint here, as the test runs inside one).
POST_QUERIES = 8
# Context: rules, skills, memory recall (the bounded count, kept a minute per process; the vector
# k-NN; two keyword passes; the entries), history window.
CONTEXT_QUERIES = 8
# The whole turn (apps/conversations/turns/), memory recall and the memory
# record included, savepoints counted (the test runs inside a transaction).
TURN_QUERIES = 34


@pytest.fixture
def stub_agent(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI_COMPATIBLE, name="stub", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    return Agent.objects.create(tenant=tenant, name="quick", system_prompt="Be brief.", guide_model=model)


@pytest.fixture
def remembered(tenant, stub_agent):
    """A few embedded memories, so recall runs all of its queries."""
    entries = [
        MemoryEntry.objects.create(
            tenant=tenant, agent=stub_agent, kind=MemoryKind.SEMANTIC, content=f"The user likes sourdough {n}."
        )
        for n in range(3)
    ]
    memory_entries_embed(entry_ids=[str(e.pk) for e in entries])
    return entries


@pytest.fixture
def session(tenant, stub_agent):
    return services.session_create(tenant=tenant, agent=stub_agent)


def _queue_turn(tenant, session, text: str = "What bread does the user like?") -> Turn:
    _, turn = services.message_post(tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": text}])
    return turn


def test_a_post_costs_at_most_its_pinned_queries_and_one_redis_round_trip_for_limits(
    tenant, make_client, session, django_assert_max_num_queries, settings
):
    settings.API_RATE_LIMIT = "1000/minute"
    client = make_client(tenant)
    warm_up = client.post(f"/api/sessions/{session.pk}/messages", {"text": "warm up"}, format="json")  # last_used_at
    # Answered (no worker runs here): the measured post is not queued behind it.
    Turn.objects.filter(pk=warm_up.json()["turn_id"]).update(status=Turn.Status.COMPLETED)
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting
    try:
        with django_assert_max_num_queries(POST_QUERIES):
            response = client.post(f"/api/sessions/{session.pk}/messages", {"text": "hello"}, format="json")
    finally:
        redis.connection.AbstractConnection.send_packed_command = original
    assert response.status_code == 202
    # The API and chat budgets and the address's failure budget: one pipeline, one send.
    assert len(sent) == 1
    assert response["RateLimit-Policy"].startswith('"chat"')


def test_context_assembly_costs_at_most_its_pinned_queries(tenant, session, remembered):
    turn = _queue_turn(tenant, session)
    turn = Turn.objects.select_related("tenant", "session", "agent", "input_message").get(pk=turn.pk)
    with CaptureQueriesContext(connection) as captured:
        context = build_context(turn=turn, agent=turn.agent)
    assert len(captured) <= CONTEXT_QUERIES, "\n".join(q["sql"][:120] for q in captured)
    assert context.snapshot["retrieved"], "recall ran and found the remembered entries"


def test_a_whole_turn_costs_at_most_its_pinned_queries(tenant, session, remembered, model_server):
    model_server.default_reply = Reply(text="Sourdough.")
    turn = _queue_turn(tenant, session)
    with CaptureQueriesContext(connection) as captured:
        turns.turn_execute(turn_id=str(turn.pk))
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED
    assert len(captured) <= TURN_QUERIES, "\n".join(q["sql"][:120] for q in captured)


# --- provider clients ------------------------------------------------------------------------------


def test_an_unchanged_provider_reuses_its_client_and_connection_pool(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI_COMPATIBLE, name="reused")
    first = client_for(provider)
    provider.refresh_from_db()  # another read of the same row, as the next turn makes
    assert client_for(provider) is first


def test_an_edited_provider_gets_a_new_client(tenant, make_provider, model_server):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI_COMPATIBLE, name="edited")
    before = client_for(provider)
    provider = provider_update(
        tenant=tenant, actor=Actor.system("test"), provider=provider, api_key="sk-another-key-987654321"
    )
    after = client_for(provider)
    assert after is not before
    # The new key is the one sent.
    after.chat(
        model="stub-small", messages=[], tools=[], temperature=None, max_output_tokens=None, on_text=lambda _: None
    )
    assert model_server.log[-1].headers["authorization"] == "Bearer sk-another-key-987654321"


def test_two_tenants_never_share_a_client_of_their_own_providers(tenant, other_tenant, make_provider):
    # The same endpoint, name and key in two tenants: still two clients, one per provider row.
    same = {"kind": ProviderKind.OPENAI_COMPATIBLE, "name": "same", "api_key": "sk-same-key-0000000"}
    mine, theirs = make_provider(tenant, **same), make_provider(other_tenant, **same)
    assert client_for(mine) is not client_for(theirs)
    assert client_for(mine) is client_for(mine)


def test_the_post_does_not_run_a_budget_query_when_no_budget_is_set(tenant, make_client, session):
    # The budget check reads the ledger only when the tenant or the key has a monthly budget.
    client = make_client(tenant)
    client.post(f"/api/sessions/{session.pk}/messages", {"text": "warm up"}, format="json")
    with CaptureQueriesContext(connection) as captured:
        client.post(f"/api/sessions/{session.pk}/messages", {"text": "hello"}, format="json")
    assert not [q for q in captured if "ledger" in q["sql"].lower()]


def test_a_query_vector_embedded_ahead_is_the_one_recall_searches_with(tenant, session, remembered):
    from apps.memory.selectors import context_query_vector

    turn = _queue_turn(tenant, session, text="What bread does the user like?")
    turn = Turn.objects.select_related("tenant", "session", "agent", "input_message").get(pk=turn.pk)
    plain = build_context(turn=turn, agent=turn.agent)
    assert plain.snapshot["retrieved"][0]["similarity"] < 0.99
    # Handed a vector of an entry's own words, recall finds that entry as an exact match: the
    # vector given is searched with, and the input text is not embedded again.
    ahead = build_context(turn=turn, agent=turn.agent, query_vector=context_query_vector("The user likes sourdough 1."))
    top = ahead.snapshot["retrieved"][0]
    assert top["content"] == "The user likes sourdough 1."
    assert top["similarity"] > 0.999
