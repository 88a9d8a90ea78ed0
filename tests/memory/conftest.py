from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from apps.memory import services
from apps.memory.embedders import get_embedder
from apps.memory.models import MemoryEntry
from apps.memory.search import clear_count_cache


@pytest.fixture(autouse=True)
def _fresh_counts():
    """Row counts are cached per process for a minute; each test counts its own rows."""
    clear_count_cache()
    yield
    clear_count_cache()


@pytest.fixture
def hashing(settings):
    """The model-free embedder: fast, and enough wherever meaning is not under test."""
    settings.EMBEDDING_BACKEND = "hashing"


@pytest.fixture
def minilm(settings):
    """The real all-MiniLM-L6-v2 (loaded once per test process, offline)."""
    settings.EMBEDDING_BACKEND = "minilm"


@pytest.fixture
def remember(db) -> Callable[..., MemoryEntry]:
    """`remember(tenant, content, **fields)`: an entry written and embedded at once."""

    def make(tenant, content: str, **fields) -> MemoryEntry:
        fields.setdefault("kind", "semantic")
        entry = services.memory_entry_create(tenant=tenant, content=content, **fields)
        services.memory_entries_embed(entry_ids=[entry.pk])
        entry.refresh_from_db()
        return entry

    return make


@pytest.fixture
def insert_vectors(db) -> Callable[..., list[MemoryEntry]]:
    """`insert_vectors(tenant, vectors)`: entries carrying the given unit vectors as if the
    configured embedder had made them (for recall tests that need control over geometry)."""

    def insert(tenant, vectors: np.ndarray, **fields) -> list[MemoryEntry]:
        name = get_embedder().name
        rows = [
            MemoryEntry(
                tenant=tenant,
                kind=fields.get("kind", "semantic"),
                collection=fields.get("collection", "semantic"),
                content=f"vector {n}",
                embedding=vector.tolist(),
                embedding_model=name,
            )
            for n, vector in enumerate(vectors)
        ]
        return MemoryEntry.objects.bulk_create(rows, batch_size=500)

    return insert


# --- the agent loop (the same fixtures as tests/conversations) -----------------------------------------


@pytest.fixture
def agent(tenant):
    """The tenant's default agent on the offline model."""
    from apps.agents.models import Agent
    from apps.agents.services import tenant_bootstrap_agents
    from apps.tenancy.principal import Actor

    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    return Agent.objects.get(tenant=tenant, name="assistant")


@pytest.fixture
def new_session(agent, owner_client) -> Callable[[], str]:
    def create() -> str:
        response = owner_client.post("/api/sessions", {"agent": agent.name}, format="json")
        assert response.status_code == 201, response.json()
        return response.json()["id"]

    return create


@pytest.fixture
def chat(new_session, owner_client, django_capture_on_commit_callbacks):
    """`chat(text, session=None)` posts a message and runs its turn inline (and whatever the turn
    queues on commit: memory's embedding task); returns the turn."""
    from apps.conversations.models import Turn

    first_session = new_session()

    def send(text: str, session: str | None = None) -> Turn:
        with django_capture_on_commit_callbacks(execute=True):
            response = owner_client.post(
                f"/api/sessions/{session or first_session}/messages", {"text": text}, format="json"
            )
        assert response.status_code == 202, response.json()
        return Turn.objects.get(pk=response.json()["turn_id"])

    send.session_id = first_session
    return send
