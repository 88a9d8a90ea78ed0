"""Writes: entries, the background embedding (idempotent, batched), what a turn records, expiry."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from apps.memory import services, tasks
from apps.memory.embedders import HashingEmbedder
from apps.memory.models import MemoryEntry, MemoryKind

pytestmark = pytest.mark.django_db


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting the texts and calls it is given."""

    def __init__(self, dimensions: int = 384):
        super().__init__(dimensions)
        self.calls: list[int] = []

    def embed(self, texts):
        self.calls.append(len(texts))
        return super().embed(texts)


@pytest.fixture
def counting(monkeypatch, hashing) -> CountingEmbedder:
    embedder = CountingEmbedder()
    monkeypatch.setattr(services, "get_embedder", lambda: embedder)
    return embedder


def test_a_write_is_stored_unembedded_and_embedded_on_commit(tenant, counting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        entry = services.memory_entry_create(tenant=tenant, content="the car would not start")
    assert entry.embedding is None
    assert len(callbacks) == 1  # the task is queued on commit, not run inside the write

    callbacks[0]()  # Celery runs eagerly in tests

    entry.refresh_from_db()
    assert entry.embedding_model == "hashing-384"
    assert len(entry.embedding) == 384
    assert counting.calls == [1]


def test_the_embedding_task_is_idempotent(tenant, counting):
    entries = [services.memory_entry_create(tenant=tenant, content=f"fact {n}") for n in range(3)]
    ids = [str(e.pk) for e in entries]

    assert tasks.embed_entries(ids) == 3
    first = list(MemoryEntry.objects.filter(pk__in=ids).order_by("pk").values_list("embedding", flat=True))
    assert tasks.embed_entries(ids) == 0  # delivered twice: nothing to do
    assert tasks.embed_entries([*ids, "01890000-0000-7000-8000-000000000000"]) == 0  # unknown ids are skipped
    again = list(MemoryEntry.objects.filter(pk__in=ids).order_by("pk").values_list("embedding", flat=True))

    assert counting.calls == [3]  # one batch, once
    assert [list(v) for v in first] == [list(v) for v in again]


def test_embedding_goes_in_batches(tenant, counting, settings):
    settings.EMBEDDING_BATCH_SIZE = 4
    ids = [services.memory_entry_create(tenant=tenant, content=f"fact {n}").pk for n in range(10)]

    assert services.memory_entries_embed(entry_ids=ids) == 10
    assert counting.calls == [4, 4, 2]


def test_an_entry_embedded_by_another_model_is_embedded_again(tenant, counting):
    entry = services.memory_entry_create(tenant=tenant, content="fact")
    MemoryEntry.objects.filter(pk=entry.pk).update(embedding=[1.0] + [0.0] * 383, embedding_model="older-model")

    assert services.memory_entries_embed(entry_ids=[entry.pk]) == 1
    entry.refresh_from_db()
    assert entry.embedding_model == "hashing-384"


def test_working_memory_is_not_embedded(tenant, counting, new_session):
    from apps.conversations.models import ChatSession

    session = ChatSession.objects.get(pk=new_session())
    working = services.memory_entry_create(tenant=tenant, content="hi", kind="working", session_id=session.pk)

    assert services.memory_entries_embed(entry_ids=[working.pk]) == 0
    assert counting.calls == []
    MemoryEntry.objects.filter(pk=working.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    assert services.memory_pending_ids() == []


def test_the_sweep_embeds_entries_whose_task_was_lost(tenant, counting):
    lost = services.memory_entry_create(tenant=tenant, content="lost")
    fresh = services.memory_entry_create(tenant=tenant, content="fresh")  # its task is still on the way
    MemoryEntry.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=5))

    assert tasks.embed_pending() == 1
    assert MemoryEntry.objects.get(pk=lost.pk).embedding_model == "hashing-384"
    assert MemoryEntry.objects.get(pk=fresh.pk).embedding is None


# --- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"content": "  "}, "content"),
        ({"content": "x", "collection": "no spaces"}, "collection"),
        ({"content": "x", "category": "a/b"}, "category"),
        ({"content": "x", "importance": 1.5}, "importance"),
        ({"content": "x", "kind": "dream"}, "kind"),
        ({"content": "x", "kind": "working"}, "session_id"),
        ({"content": "x", "keywords": "not-a-list"}, "keywords"),
    ],
)
def test_invalid_entries_are_refused_field_by_field(tenant, fields, field):
    with pytest.raises(ValidationError) as raised:
        services.memory_entry_create(tenant=tenant, **fields)
    assert field in raised.value.detail


def test_another_tenants_agent_is_refused(tenant, other_tenant):
    from apps.agents.services import agent_create
    from apps.tenancy.principal import Actor

    foreign = agent_create(tenant=other_tenant, actor=Actor.system("test"), name="foreign")
    with pytest.raises(ValidationError) as raised:
        services.memory_entry_create(tenant=tenant, content="x", agent=foreign)
    assert "agent" in raised.value.detail


def test_defaults_each_kind_to_its_own_collection_and_keywords_to_text(tenant, new_session):
    from apps.conversations.models import ChatSession

    session = ChatSession.objects.get(pk=new_session())
    fact = services.memory_entry_create(tenant=tenant, content="x", keywords=["Blue  folder", "blue  folder", "tax"])
    working = services.memory_entry_create(tenant=tenant, content="y", kind="working", session_id=session.pk)

    assert fact.collection == "semantic"
    assert fact.keywords == ["Blue folder", "tax"]
    assert fact.keywords_text == "Blue folder tax"
    assert working.collection == "working"
    assert working.expires_at > timezone.now()


def test_remembering_the_same_fact_twice_stores_it_once(tenant, agent):
    first, created = services.memory_fact_remember(tenant=tenant, agent=agent, fact="Likes  tea", category="food")
    again, created_again = services.memory_fact_remember(tenant=tenant, agent=agent, fact="likes tea", category="food")

    assert (created, created_again) == (True, False)
    assert again == first
    assert first.kind == MemoryKind.SEMANTIC
    assert first.agent == agent
    assert "tea" in first.keywords


# --- what a turn records ----------------------------------------------------------------------------------


def _completed_turn(tenant, agent, session, user_text: str, answer: str, *, status="completed"):
    from apps.conversations.models import Message, Turn

    def message(role: str, text: str) -> Message:
        return Message.objects.create(tenant=tenant, session=session, role=role, parts=[{"type": "text", "text": text}])

    question, reply = message("user", user_text), message("assistant", answer)
    return Turn.objects.create(
        tenant=tenant, session=session, agent=agent, input_message=question, output_message=reply, status=status
    )


@pytest.fixture
def session(tenant, agent):
    from apps.conversations.models import ChatSession

    return ChatSession.objects.create(tenant=tenant, agent=agent)


def test_a_turn_records_an_episode_and_working_memory_once(
    tenant, agent, session, counting, django_capture_on_commit_callbacks
):
    turn = _completed_turn(
        tenant, agent, session, "Remember that my dog is called Biscuit and loves the beach", "Noted: Biscuit."
    )

    exchange = {
        "tenant_id": tenant.pk,
        "agent_id": agent.pk,
        "session_id": session.pk,
        "turn_id": turn.pk,
        "user_text": "Remember that my dog is called Biscuit and loves the beach",
        "answer_text": "Noted: Biscuit.",
        "model": "offline/offline-small",
    }
    with django_capture_on_commit_callbacks(execute=True):
        services.memory_record_exchange(**exchange)
        services.memory_record_exchange(**exchange)  # the engine or a redelivered task calls it again

    episodes = MemoryEntry.objects.filter(tenant=tenant, kind=MemoryKind.EPISODIC)
    assert episodes.count() == 1
    episode = episodes.get()
    assert episode.summary.startswith("User: Remember that my dog is called Biscuit")
    assert "Assistant: Noted: Biscuit." in episode.summary
    assert {"dog", "biscuit", "beach"} <= set(episode.keywords)
    assert episode.topic
    assert episode.importance >= 0.6  # "remember", a stated fact
    assert (episode.agent, episode.session, episode.turn) == (agent, session, turn)
    working = MemoryEntry.objects.filter(tenant=tenant, kind=MemoryKind.WORKING, session=session)
    assert sorted(w.metadata["role"] for w in working) == ["assistant", "user"]
    assert all(w.expires_at for w in working)
    assert episode.embedding_model == "hashing-384"  # embedded by the task queued on commit
    assert all(w.embedding is None for w in working)  # working memory is never embedded
    assert counting.calls == [1]


def _record(turn) -> None:
    services.memory_record_exchange(
        tenant_id=turn.tenant_id,
        agent_id=turn.agent_id,
        session_id=turn.session_id,
        turn_id=turn.pk,
        user_text=turn.input_message.text,
        answer_text=turn.output_message.text,
    )


def test_an_exchange_with_no_text_records_nothing(tenant, agent, session):
    _record(_completed_turn(tenant, agent, session, "  ", ""))
    assert not MemoryEntry.objects.filter(tenant=tenant).exists()


def test_recording_an_exchange_never_raises(tenant, agent, caplog):
    # Without a session its working memory is invalid: logged, and the turn stays answered.
    services.memory_record_exchange(
        tenant_id=tenant.pk,
        agent_id=agent.pk,
        session_id=None,
        turn_id=uuid.uuid4(),
        user_text="hello",
        answer_text="hi",
    )
    assert "recording its memory failed" in caplog.text
    assert not MemoryEntry.objects.filter(tenant=tenant).exists()


def test_working_memory_keeps_the_latest_items_of_the_session(tenant, agent, session, settings):
    settings.WORKING_MEMORY_MAX_ITEMS = 4
    for n in range(4):
        _record(_completed_turn(tenant, agent, session, f"question {n}", f"answer {n}"))

    working = MemoryEntry.objects.filter(session=session, kind=MemoryKind.WORKING).order_by("created_at")
    assert [w.content for w in working] == ["question 2", "answer 2", "question 3", "answer 3"]
    assert MemoryEntry.objects.filter(session=session, kind=MemoryKind.EPISODIC).count() == 4


def test_expired_and_orphaned_working_memory_is_purged(tenant, agent, session):
    _record(_completed_turn(tenant, agent, session, "question", "answer"))
    expired = services.memory_entry_create(
        tenant=tenant, content="old", expires_at=timezone.now() - timedelta(seconds=1)
    )
    fact = services.memory_entry_create(tenant=tenant, content="kept")

    session.delete()  # working memory ends with its session
    assert tasks.purge_expired() == 3  # two working items, one expired fact

    assert not MemoryEntry.objects.filter(pk=expired.pk).exists()
    assert MemoryEntry.objects.filter(pk=fact.pk).exists()
    assert MemoryEntry.objects.filter(kind=MemoryKind.EPISODIC).count() == 1  # episodes outlive the session
