"""The memory API: shapes, limits, roles and errors."""

from __future__ import annotations

import pytest

from apps.memory import services
from apps.memory.models import MemoryEntry
from apps.tenancy.models import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hashing")]


@pytest.fixture
def viewer(tenant, make_client):
    return make_client(tenant, role=Role.VIEWER)


@pytest.fixture
def member(tenant, make_client):
    return make_client(tenant, role=Role.MEMBER)


@pytest.fixture
def admin(tenant, make_client):
    return make_client(tenant, role=Role.ADMIN)


@pytest.fixture
def facts(tenant, remember):
    return [
        remember(tenant, "the invoices are in the blue folder", collection="office", category="places"),
        remember(tenant, "the car would not start on monday", collection="office"),
        remember(tenant, "likes green tea", category="preferences"),
    ]


# --- writing -------------------------------------------------------------------------------------------------


def test_member_adds_an_entry_that_is_embedded_after_the_response(member, tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = member.post(
            "/api/memory/entries",
            {
                "content": "The wifi password is on the fridge",
                "category": "home",
                "keywords": ["wifi"],
                "importance": 0.9,
            },
            format="json",
        )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "semantic"
    assert body["collection"] == "semantic"
    assert body["category"] == "home"
    assert body["keywords"] == ["wifi"]
    assert body["importance"] == 0.9
    assert body["agent"] is None
    assert body["embedded"] is False  # the API answers before the embedding runs
    assert body["created_at"].endswith("Z")
    assert len(callbacks) == 1

    callbacks[0]()
    assert member.get("/api/memory/entries/semantic").json()["entries"][0]["embedded"] is True
    assert MemoryEntry.objects.get(pk=body["id"]).embedding_model == "hashing-384"


def test_an_entry_can_belong_to_an_agent_and_a_session(member, agent, new_session):
    session_id = new_session()
    response = member.post(
        "/api/memory/entries",
        {"content": "user asked about the weather", "kind": "working", "agent": agent.name, "session_id": session_id},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["agent"] == agent.name
    assert response.json()["session_id"] == session_id
    assert response.json()["expires_at"] is not None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "content"),
        ({"content": "x", "kind": "dream"}, "kind"),
        ({"content": "x", "collection": "has space"}, "collection"),
        ({"content": "x", "importance": 2}, "importance"),
        ({"content": "x", "agent": "nobody"}, "agent"),
        ({"content": "x", "session_id": "00000000-0000-7000-8000-000000000000"}, "session_id"),
        ({"content": "x", "kind": "working"}, "session_id"),
        ({"content": "x", "keywords": "wifi"}, "keywords"),
    ],
)
def test_invalid_entries_are_a_400_naming_the_field(member, payload, field):
    response = member.post("/api/memory/entries", payload, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "Validation failed"
    assert field in response.json()["fields"]


def test_writing_needs_the_member_role(viewer, facts):
    assert viewer.post("/api/memory/entries", {"content": "x"}, format="json").status_code == 403
    assert viewer.delete(f"/api/memory/entry/office/{facts[0].pk}").status_code == 403
    assert viewer.post("/api/memory/delete/office", {"entry_ids": [str(facts[0].pk)]}, format="json").status_code == 403


def test_clearing_needs_the_admin_role(member, admin, facts):
    assert member.post("/api/memory/clear/office").status_code == 403

    response = admin.post("/api/memory/clear/office")

    assert response.status_code == 200
    assert response.json() == {"collection": "office", "deleted": 2}
    assert admin.get("/api/memory/entries/office").status_code == 404  # an empty collection is gone


def test_deleting_one_entry(member, facts):
    first = facts[0]
    assert member.delete(f"/api/memory/entry/semantic/{first.pk}").status_code == 404  # not in that collection
    assert member.delete(f"/api/memory/entry/office/{first.pk}").status_code == 204
    assert member.delete(f"/api/memory/entry/office/{first.pk}").status_code == 404
    assert member.delete("/api/memory/entry/office/not-a-uuid").status_code == 404
    assert member.delete("/api/memory/entry/bad.name/x").status_code == 400


def test_deleting_several_entries_skips_ids_outside_the_collection(member, facts):
    ids = [str(f.pk) for f in facts]

    response = member.post("/api/memory/delete/office", {"entry_ids": ids}, format="json")

    assert response.json() == {"collection": "office", "deleted": 2}
    assert MemoryEntry.objects.filter(pk=facts[2].pk).exists()
    bad = member.post("/api/memory/delete/semantic", {"entry_ids": ["nope"]}, format="json")
    assert bad.status_code == 400
    assert "entry_ids" in bad.json()["fields"]
    assert member.post("/api/memory/delete/semantic", {"entry_ids": []}, format="json").status_code == 400


# --- reading -------------------------------------------------------------------------------------------------


def test_search_answers_results_with_score_and_match_type(viewer, facts):
    response = viewer.get("/api/memory/search", {"q": "blue folder", "mode": "hybrid", "k": 2})

    assert response.status_code == 200
    body = response.json()
    assert (body["query"], body["mode"], body["k"]) == ("blue folder", "hybrid", 2)
    assert body["count"] == len(body["results"]) <= 2
    top = body["results"][0]
    assert top["id"] == str(facts[0].pk)
    assert top["matchType"] == "hybrid"
    assert top["score"] > 0
    assert {"content", "summary", "keywords", "collection", "category", "similarity", "created_at"} <= set(top)


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_search_modes(viewer, facts, mode):
    results = viewer.get("/api/memory/search", {"q": "invoices", "mode": mode}).json()["results"]
    assert results[0]["id"] == str(facts[0].pk)
    assert results[0]["matchType"] in ({"vector"} if mode == "vector" else {"keyword", "hybrid"})


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": "x", "k": 0}, "k"),
        ({"q": "x", "k": 101}, "k"),
        ({"q": "x", "mode": "fuzzy"}, "mode"),
        ({"q": "x", "kind": "dream"}, "kind"),
        ({"q": "x", "collection": "a/b"}, "collection"),
        ({"q": "x", "agent": "nobody"}, "agent"),
        ({"q": "x", "session_id": "nope"}, "session_id"),
    ],
)
def test_search_parameters_are_validated(viewer, params, field):
    response = viewer.get("/api/memory/search", params)
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_search_filters_by_collection_and_category(viewer, facts):
    office = viewer.get("/api/memory/search", {"q": "tea folder car", "collection": "office", "k": 10}).json()
    assert {r["id"] for r in office["results"]} == {str(facts[0].pk), str(facts[1].pk)}
    tea = viewer.get("/api/memory/search", {"q": "tea folder car", "category": "preferences"}).json()
    assert [r["id"] for r in tea["results"]] == [str(facts[2].pk)]


def test_query_searches_with_a_json_body_and_a_viewer_may_use_it(viewer, facts):
    response = viewer.post("/api/memory/query", {"query": "green tea", "k": 1, "collection": "semantic"}, format="json")

    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(facts[2].pk)]
    assert viewer.post("/api/memory/query", {"query": "x", "k": 500}, format="json").status_code == 400


def test_collections_with_counts_and_kinds(viewer, facts):
    body = viewer.get("/api/memory/collections").json()
    assert body == {
        "collections": [
            {"name": "office", "count": 2, "kinds": ["semantic"]},
            {"name": "semantic", "count": 1, "kinds": ["semantic"]},
        ],
        "count": 2,
    }


def test_entries_of_a_collection_page_with_limit_and_offset(viewer, tenant):
    for n in range(5):
        services.memory_entry_create(tenant=tenant, content=f"note {n}", collection="notes")

    page = viewer.get("/api/memory/entries/notes", {"limit": 2, "offset": 1}).json()

    assert [e["content"] for e in page["entries"]] == ["note 3", "note 2"]  # newest first
    assert (page["count"], page["total"], page["limit"], page["offset"]) == (2, 5, 2, 1)
    assert viewer.get("/api/memory/entries/notes").json()["limit"] == 20
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}):
        assert viewer.get("/api/memory/entries/notes", params).status_code == 400
    assert viewer.get("/api/memory/entries/missing").status_code == 404
    response = viewer.get("/api/memory/entries/bad.name")
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid collection ID format"


def test_episodes_in_the_reference_shape(viewer, tenant):
    for n in range(3):
        services.memory_entry_create(
            tenant=tenant,
            kind="episodic",
            content=f"User: tell me about topic {n}",
            summary=f"asked about topic {n}",
            keywords=[f"topic{n}"],
            topic=f"topic{n}",
            importance=0.4,
        )

    body = viewer.get("/api/memory/episodic", {"limit": 2}).json()

    assert (body["count"], body["available"]) == (2, 3)
    episode = body["episodes"][0]
    reference = {"id", "summary", "keywords", "topic", "timestamp", "importance", "type", "score", "matchType"}
    assert set(episode) >= reference
    assert (episode["summary"], episode["type"], episode["score"], episode["matchType"]) == (
        "asked about topic 2",
        "episodic",
        0.4,
        None,
    )
    searched = viewer.get("/api/memory/episodic", {"q": "topic1", "mode": "keyword"}).json()["episodes"]
    assert searched[0]["summary"] == "asked about topic 1"
    assert searched[0]["matchType"] == "keyword"
    for limit in (0, 101):
        assert viewer.get("/api/memory/episodic", {"limit": limit}).status_code == 400
    assert len(viewer.get("/api/memory/episodic").json()["episodes"]) == 3  # default limit 20


def test_semantic_facts_and_categories(viewer, facts):
    body = viewer.get("/api/memory/semantic").json()
    assert (body["count"], body["available"]) == (3, 3)

    categories = viewer.get("/api/memory/semantic/categories").json()
    assert categories == {
        "categories": [{"name": "places", "count": 1}, {"name": "preferences", "count": 1}],
        "count": 2,
    }
    places = viewer.get("/api/memory/semantic/places").json()
    assert places["category"] == "places"
    assert [f["id"] for f in places["facts"]] == [str(facts[0].pk)]
    assert viewer.get("/api/memory/semantic/unknown").status_code == 404
    assert viewer.get("/api/memory/semantic", {"q": "tea"}).json()["facts"][0]["matchType"] in ("vector", "hybrid")


def test_working_memory_of_all_sessions_and_of_one(viewer, tenant, new_session):
    from apps.conversations.models import ChatSession

    session = ChatSession.objects.get(pk=new_session())
    services.memory_entry_create(tenant=tenant, kind="working", content="user: hello", session_id=session.pk)

    everything = viewer.get("/api/memory/working").json()
    one = viewer.get(f"/api/memory/working/{session.pk}").json()

    assert everything["count"] == one["count"] == 1
    assert one["session_id"] == str(session.pk)
    assert one["items"][0]["content"] == "user: hello"
    assert viewer.get("/api/memory/working/00000000-0000-7000-8000-000000000000").status_code == 404


def test_stats(viewer, facts, tenant):
    services.memory_entry_create(tenant=tenant, content="not embedded yet")

    body = viewer.get("/api/memory/stats").json()

    assert body["total"] == 4
    assert body["by_kind"] == {"working": 0, "episodic": 0, "semantic": 4}
    assert body["collections"] == 2
    assert body["pending_embeddings"] == 1
    assert body["embedder"]["backend"] == "hashing"
    assert body["embedder"]["dimensions"] == 384


def test_another_tenants_memory_is_a_404_everywhere(tenant, other_tenant, make_client, remember, agent):
    from apps.conversations.models import ChatSession

    theirs = remember(other_tenant, "their secret plan", collection="plans", category="secrets")
    their_session = ChatSession.objects.create(tenant=other_tenant)
    client = make_client(tenant, role=Role.OWNER)

    assert client.get("/api/memory/entries/plans").status_code == 404
    assert client.delete(f"/api/memory/entry/plans/{theirs.pk}").status_code == 404
    assert client.post("/api/memory/delete/plans", {"entry_ids": [str(theirs.pk)]}, format="json").status_code == 404
    assert client.post("/api/memory/clear/plans").status_code == 404
    assert client.get("/api/memory/semantic/secrets").status_code == 404
    assert client.get(f"/api/memory/working/{their_session.pk}").status_code == 404
    for mode in ("vector", "keyword", "hybrid"):
        assert client.get("/api/memory/search", {"q": "secret plan", "mode": mode}).json()["results"] == []
    assert client.post("/api/memory/query", {"query": "secret plan"}, format="json").json()["results"] == []
    assert "plans" not in client.get("/api/memory/collections").content.decode()
    assert MemoryEntry.objects.filter(pk=theirs.pk).exists()


def test_the_api_needs_a_key(anon_client):
    response = anon_client.get("/api/memory/stats")
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
