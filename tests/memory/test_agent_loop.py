"""Memory in the agent loop: a completed turn writes an episode, and a later turn's context (in
another session) recalls it into the snapshot and the system prompt. Runs the real engine on the
offline model, with the real all-MiniLM-L6-v2 embedding on commit."""

from __future__ import annotations

import pytest

from apps.memory.models import MemoryEntry, MemoryKind

pytestmark = pytest.mark.django_db


def test_a_turn_writes_an_episode_that_a_later_turn_in_another_session_recalls(chat, new_session, minilm):
    told = chat("My dog is called Biscuit and she loves the beach.")
    assert told.status == "completed", told.error

    episode = MemoryEntry.objects.get(turn=told, kind=MemoryKind.EPISODIC)
    assert "Biscuit" in episode.summary
    assert {"dog", "biscuit"} <= set(episode.keywords)
    assert episode.embedding_model == "all-MiniLM-L6-v2"  # embedded by the task queued on commit
    assert episode.agent_id == told.agent_id
    assert MemoryEntry.objects.filter(turn=told, kind=MemoryKind.WORKING).count() == 2

    asked = chat("What is the name of my dog?", session=new_session())
    assert asked.status == "completed", asked.error

    retrieved = asked.context_snapshot["retrieved"]
    assert retrieved, "the later turn's context recalled nothing"
    assert retrieved[0]["id"] == str(episode.pk)
    assert retrieved[0]["kind"] == "episodic"
    assert retrieved[0]["matchType"] in ("vector", "keyword", "hybrid")
    assert retrieved[0]["score"] > 0
    assert "Biscuit" in (retrieved[0]["summary"] or retrieved[0]["content"])
    assert "Biscuit" in asked.context_snapshot["system_prompt"]


def test_an_unrelated_question_recalls_nothing_irrelevant(chat, new_session, minilm):
    chat("My dog is called Biscuit and she loves the beach.")

    asked = chat("Which train goes to the airport?", session=new_session())

    assert asked.context_snapshot["retrieved"] == []


def test_the_same_session_does_not_recall_what_its_history_already_shows(chat, minilm):
    chat("My dog is called Biscuit.")

    again = chat("What is my dog called?")  # the same session: the exchange is in the history

    assert [item["id"] for item in again.context_snapshot["retrieved"]] == []
    assert MemoryEntry.objects.filter(kind=MemoryKind.EPISODIC).count() == 2


def test_recall_stays_within_the_tenant(chat, new_session, minilm, other_tenant):
    from apps.memory.services import memory_entry_create

    memory_entry_create(tenant=other_tenant, kind="episodic", content="User: my dog is called Rex", summary="dog Rex")

    asked = chat("What is my dog called?", session=new_session())

    assert "Rex" not in str(asked.context_snapshot)


def test_the_demo_agent_remembers_a_fact_and_says_so_in_another_session(chat, new_session, minilm):
    """What `make run` shows with no model configured: the offline model saves a "remember that"
    with the remember tool, and a later session's answer quotes what the context recalled."""
    told = chat("Remember that my favourite colour is teal.")
    assert told.status == "completed", told.error
    fact = MemoryEntry.objects.get(kind=MemoryKind.SEMANTIC, category="general")
    assert fact.content == "my favourite colour is teal."
    assert fact.agent_id == told.agent_id

    asked = chat("Which colour do I like best?", session=new_session())

    assert str(fact.pk) in [item["id"] for item in asked.context_snapshot["retrieved"]]
    answer = asked.output_message.text
    assert "I remember: " in answer
    assert "my favourite colour is teal" in answer.split("I remember: ", 1)[1]
