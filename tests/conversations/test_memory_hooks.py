"""What a finished turn hands to memory (apps/conversations/memory_hooks.py), and the session
port conversations answers for the apps below it (apps/conversations/directory.py)."""

from __future__ import annotations

import uuid

import pytest

from apps.agents.services import tenant_bootstrap_agents
from apps.conversations.memory_hooks import memory_record_turn
from apps.conversations.models import ChatSession, Message, Turn
from apps.core.chat_sessions import session_ids_owned, session_owned
from apps.memory.models import MemoryEntry, MemoryKind
from apps.tenancy.principal import Actor


@pytest.fixture
def agent(tenant):
    return tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))


@pytest.fixture
def session(tenant, agent):
    return ChatSession.objects.create(tenant=tenant, agent=agent)


def _turn(session, user_text: str, answer: str, *, status=Turn.Status.COMPLETED) -> Turn:
    def message(role: str, text: str) -> Message:
        return Message.objects.create(
            tenant=session.tenant, session=session, role=role, parts=[{"type": "text", "text": text}]
        )

    return Turn.objects.create(
        tenant=session.tenant,
        session=session,
        agent=session.agent,
        input_message=message("user", user_text),
        output_message=message("assistant", answer),
        status=status,
        model="offline/offline-small",
    )


def test_a_completed_turn_is_recorded_once_with_its_ids(session, django_capture_on_commit_callbacks):
    turn = _turn(session, "My sister Ana lives in Porto", "Noted: Ana in Porto.")

    with django_capture_on_commit_callbacks(execute=True):
        memory_record_turn(turn=turn)
        memory_record_turn(turn=turn)  # a redelivered task records nothing more

    episode = MemoryEntry.objects.get(tenant=session.tenant, kind=MemoryKind.EPISODIC)
    assert (episode.agent_id, episode.session_id, episode.turn_id) == (session.agent_id, session.pk, turn.pk)
    assert episode.metadata == {"turn_id": str(turn.pk), "model": "offline/offline-small"}
    assert "Ana" in episode.summary
    working = MemoryEntry.objects.filter(session_id=session.pk, kind=MemoryKind.WORKING)
    assert sorted(w.metadata["role"] for w in working) == ["assistant", "user"]


def test_a_turn_that_did_not_complete_records_nothing(session):
    memory_record_turn(turn=_turn(session, "hello", "", status=Turn.Status.FAILED))
    assert not MemoryEntry.objects.filter(tenant=session.tenant).exists()


def test_the_session_port_answers_only_for_the_tenants_own_sessions(tenant, other_tenant, session):
    theirs = ChatSession.objects.create(tenant=other_tenant)
    unknown = uuid.uuid4()

    assert session_ids_owned(tenant_id=tenant.pk, session_ids=[session.pk, theirs.pk, unknown]) == {session.pk}
    assert session_owned(tenant_id=tenant.pk, session_id=session.pk)
    assert not session_owned(tenant_id=tenant.pk, session_id=theirs.pk)
    assert not session_owned(tenant_id=tenant.pk, session_id=None)
