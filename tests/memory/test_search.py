"""Search: by meaning (the real all-MiniLM-L6-v2), by words, both fused, always within one tenant,
and with its recall kept for a small tenant among large ones."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from apps.memory import selectors
from apps.memory.models import MemoryEntry
from apps.memory.search import MemoryFilter, reciprocal_rank_fusion, vector_search
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

UNRELATED = [
    "we had pasta with tomato sauce for dinner",
    "the quarterly budget review is on friday",
    "my cat likes to sleep on the sofa in the afternoon",
    "remember to water the tomatoes on the balcony",
]


def contents(hits) -> list[str]:
    return [hit.entry.content for hit in hits]


# --- by meaning -----------------------------------------------------------------------------------------


def test_semantic_recall_finds_the_car_that_would_not_start_for_a_broken_down_automobile(tenant, remember, minilm):
    for text in UNRELATED:
        remember(tenant, text)
    car = remember(tenant, "the car would not start this morning")

    hits = selectors.memory_search(tenant=tenant, query="my automobile broke down", mode="vector", k=5)

    assert hits[0].entry == car
    assert hits[0].match_type == "vector"
    assert hits[0].similarity > hits[1].similarity + 0.1  # clearly ahead, not a coin toss
    assert car.embedding_model == "all-MiniLM-L6-v2"


def test_hybrid_mode_ranks_by_meaning_when_no_word_is_shared(tenant, remember, minilm):
    for text in UNRELATED:
        remember(tenant, text)
    car = remember(tenant, "the car would not start this morning")

    hits = selectors.memory_search(tenant=tenant, query="my automobile broke down", mode="hybrid", k=5)

    assert hits[0].entry == car
    assert hits[0].match_type == "vector"  # no shared word: only the vector search found it


# --- by words ----------------------------------------------------------------------------------------------


def test_keyword_mode_finds_only_entries_sharing_a_word_stemmed(tenant, remember, hashing):
    for text in UNRELATED:
        remember(tenant, text)
    flight = remember(tenant, "Flight to Zanzibar leaves at 9, gate B12")
    started = remember(tenant, "the migration started after lunch")

    assert contents(selectors.memory_search(tenant=tenant, query="zanzibar", mode="keyword")) == [flight.content]
    # English stemming: "starting" finds "started".
    found = selectors.memory_search(tenant=tenant, query="starting", mode="keyword")
    assert [h.entry for h in found] == [started]
    assert found[0].match_type == "keyword"
    assert 0 < found[0].score <= 1


def test_keyword_mode_prefers_entries_with_all_the_words_but_any_word_matches(tenant, remember, hashing):
    both = remember(tenant, "the blue folder holds the invoices")
    one = remember(tenant, "a blue sky over the harbour")

    hits = selectors.memory_search(tenant=tenant, query="blue invoices", mode="keyword")

    assert [h.entry for h in hits] == [both, one]


def test_keyword_matches_the_summary_topic_and_keywords_too(tenant, remember, hashing):
    entry = remember(tenant, "see attached", summary="notes from the dentist", keywords=["molar"], topic="health")

    for word in ("dentist", "molar", "health"):
        assert [h.entry for h in selectors.memory_search(tenant=tenant, query=word, mode="keyword")] == [entry]


def test_a_query_of_stop_words_only_finds_nothing_by_keyword(tenant, remember, hashing):
    remember(tenant, "the car would not start")
    assert selectors.memory_search(tenant=tenant, query="the and of", mode="keyword") == []


# --- fused ---------------------------------------------------------------------------------------------------


def test_hybrid_puts_an_entry_found_both_ways_first_with_both_ranks_added(tenant, remember, minilm):
    for text in UNRELATED:
        remember(tenant, text)
    remember(tenant, "my automobile would not start")  # meaning only
    remember(tenant, "a battery of tests at school")  # a word only
    both = remember(tenant, "the car battery died overnight")

    hits = selectors.memory_search(tenant=tenant, query="car battery", mode="hybrid", k=5)

    assert hits[0].entry == both
    assert hits[0].match_type == "hybrid"
    assert hits[0].score == pytest.approx(1 / 61 + 1 / 61)  # first in both lists, k = 60
    assert {h.match_type for h in hits[1:]} <= {"vector", "keyword", "hybrid"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_reciprocal_rank_fusion_adds_one_over_60_plus_rank_per_list():
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    fused = reciprocal_rank_fusion([(a, 0.1), (b, 0.2)], [(b, 0.9), (c, 0.5)], k_rrf=60)

    assert [h.entry_id for h in fused] == [b, a, c]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[0].match_type == "hybrid"
    assert fused[1].match_type == "vector"
    assert fused[1].score == pytest.approx(1 / 61)
    assert fused[2].match_type == "keyword"
    assert fused[2].score == pytest.approx(1 / 62)


# --- filters -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_every_search_mode_stays_inside_the_tenant(tenant, other_tenant, remember, hashing, mode):
    mine = remember(tenant, "the car would not start")
    remember(other_tenant, "the car would not start")
    remember(other_tenant, "the car would not start either, said the neighbour")

    hits = selectors.memory_search(tenant=tenant, query="car would not start", mode=mode, k=10)

    assert [h.entry for h in hits] == [mine]


def test_filters_by_agent_kind_collection_category_and_session(tenant, remember, hashing, agent, new_session):
    from apps.conversations.models import ChatSession

    session = ChatSession.objects.get(pk=new_session())
    tenant_wide = remember(tenant, "the office wifi password is on the fridge")
    own = remember(tenant, "the wifi at home is slow", agent=agent, category="home")
    other_agent = remember(tenant, "the wifi in the lab", agent=_other_agent(tenant))
    notes = remember(tenant, "wifi notes", collection="notes")
    working = remember(tenant, "wifi came up just now", kind="working", session_id=session.pk)

    def found(**filters) -> set:
        return {h.entry for h in selectors.memory_search(tenant=tenant, query="wifi", mode="hybrid", k=20, **filters)}

    assert found() == {tenant_wide, own, other_agent, notes, working}
    assert found(agent=agent) == {tenant_wide, own, notes, working}  # its own and tenant-wide
    assert found(agent=agent, agent_only=True) == {own}
    assert found(kinds=("working",)) == {working}
    assert found(collection="notes") == {notes}
    assert found(category="home") == {own}
    assert found(session_id=session.pk) == {working}


def _other_agent(tenant):
    from apps.agents.services import agent_create
    from apps.tenancy.principal import Actor

    return agent_create(tenant=tenant, actor=Actor.system("test"), name="other-agent")


def test_expired_entries_are_not_found(tenant, remember, hashing):
    remember(tenant, "the door code is 4711", expires_at=timezone.now() - timedelta(minutes=1))
    live = remember(tenant, "the door code is 1234")

    for mode in ("vector", "keyword", "hybrid"):
        assert [h.entry for h in selectors.memory_search(tenant=tenant, query="door code", mode=mode)] == [live]


def test_entries_embedded_by_another_model_are_left_to_keyword_search(tenant, remember, hashing):
    entry = remember(tenant, "the car would not start")
    MemoryEntry.objects.filter(pk=entry.pk).update(embedding_model="some-older-model")

    assert selectors.memory_search(tenant=tenant, query="car", mode="vector") == []
    assert [h.entry for h in selectors.memory_search(tenant=tenant, query="car", mode="keyword")] == [entry]


def test_unembedded_entries_are_found_by_keyword_at_once(tenant, hashing):
    from apps.memory.services import memory_entry_create

    entry = memory_entry_create(tenant=tenant, content="the parcel arrives on tuesday")  # no task has run

    assert [h.entry for h in selectors.memory_search(tenant=tenant, query="parcel", mode="hybrid")] == [entry]


# --- recall for every tenant size -------------------------------------------------------------------------------


def _unit(rng, n, dims=384):
    vectors = rng.standard_normal((n, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _recall(found, truth) -> float:
    return len(set(found) & set(truth)) / len(truth)


def test_filtered_recall_for_a_small_tenant_among_large_ones(tenant, insert_vectors, hashing, settings):
    """A tenant of 20 rows among 1,500: HNSW alone would return the 40 nearest rows of the whole
    table and nearly none of them would be this tenant's. The search must find its true top 10."""
    settings.MEMORY_EXACT_SCAN_MAX_ROWS = 100  # the big tenants take the HNSW path here
    rng = np.random.default_rng(0)
    big_one, big_two, mid = TenantFactory(), TenantFactory(), TenantFactory()
    insert_vectors(big_one, _unit(rng, 900))
    insert_vectors(big_two, _unit(rng, 400))
    mid_rows = insert_vectors(mid, _unit(rng, 180))
    small_rows = insert_vectors(tenant, _unit(rng, 20))
    name = MemoryEntry.objects.filter(tenant=tenant).values_list("embedding_model", flat=True).first()

    for owner, rows, expected_strategy in ((tenant, small_rows, "exact"), (mid, mid_rows, "hnsw")):
        matrix = np.array([row.embedding for row in rows], dtype=np.float32)
        recalls = []
        for query in _unit(rng, 20):
            found, plan = vector_search(MemoryFilter(tenant_id=owner.pk), query.tolist(), k=10, embedding_model=name)
            truth = [rows[i].pk for i in np.argsort(-(matrix @ query))[:10]]
            assert len(found) == 10
            assert plan.strategy == expected_strategy
            recalls.append(_recall([entry_id for entry_id, _ in found], truth))
        assert np.mean(recalls) >= (1.0 if expected_strategy == "exact" else 0.95), (owner, recalls)


def test_a_selective_filter_in_a_big_tenant_falls_back_to_an_exact_scan(tenant, insert_vectors, hashing, settings):
    settings.MEMORY_EXACT_SCAN_MAX_ROWS = 100
    settings.MEMORY_HNSW_MAX_SCAN_TUPLES = 200  # the iterative scan gives up early here
    rng = np.random.default_rng(1)
    name = insert_vectors(tenant, _unit(rng, 600))[0].embedding_model

    query = _unit(rng, 1)[0].tolist()
    found, plan = vector_search(MemoryFilter(tenant_id=tenant.pk), query, k=10, embedding_model=name)
    assert plan.strategy == "hnsw"
    assert len(found) == 10

    # Filtering on a column the count does not see (an agent nobody has) empties every candidate:
    # the HNSW scan runs out, and the exact scan answers (correctly: nothing).
    lonely = MemoryFilter(tenant_id=tenant.pk, agent_id=uuid.uuid4(), agent_only=True)
    found, plan = vector_search(lonely, _unit(rng, 1)[0].tolist(), k=10, embedding_model=name)
    assert (found, plan.strategy) == ([], "hnsw+exact")


def test_a_first_memory_is_found_by_meaning_at_once(tenant, remember, hashing):
    """An empty tenant's count is not cached: the entry written next is vector-searchable now."""
    assert selectors.memory_search(tenant=tenant, query="teal colour", mode="vector", k=5) == []
    entry = remember(tenant, "my favourite colour is teal")

    hits = selectors.memory_search(tenant=tenant, query="teal colour", mode="vector", k=5)

    assert [hit.entry.pk for hit in hits] == [entry.pk]
