"""`/api/agent/message` continuing a session, and cancelling a turn a worker is running.

Transactional: the turn runs (inline, as the eager Celery task) when its transaction commits,
and a second thread, with its own database connection, must see the rows the first wrote."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations import services
from apps.conversations.models import ChatSession, Turn
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_providers")]


@pytest.mark.parametrize("spelling", ["sessionId", "session_id", "session"])
def test_agent_message_continues_the_session_named_by_any_spelling(owner_client, agent, spelling):
    first = owner_client.post("/api/agent/message", {"text": "what is 6*7?"}, format="json")
    assert first.status_code == 200, first.json()
    session_id = first.json()["sessionId"]

    follow_up = owner_client.post("/api/agent/message", {"text": "thanks", spelling: session_id}, format="json")
    assert follow_up.status_code == 200, follow_up.json()
    assert follow_up.json()["sessionId"] == session_id
    assert ChatSession.objects.count() == 1
    turns = Turn.objects.filter(session_id=session_id).order_by("created_at")
    assert [t.input_message.text for t in turns] == ["what is 6*7?", "thanks"]


def test_agent_message_with_another_agent_than_the_sessions_is_refused(owner_client, agent):
    session_id = owner_client.post("/api/agent/message", {"text": "hi"}, format="json").json()["sessionId"]
    Agent.objects.create(tenant=agent.tenant, name="second", system_prompt="", guide_model=agent.guide_model)
    same = owner_client.post(
        "/api/agent/message", {"text": "hi", "session_id": session_id, "agent": "assistant"}, format="json"
    )
    assert same.status_code == 200
    other = owner_client.post(
        "/api/agent/message", {"text": "hi", "session_id": session_id, "agent": "second"}, format="json"
    )
    assert other.status_code == 400
    assert "agent" in other.json()["fields"]
    assert Turn.objects.filter(session_id=session_id).count() == 2


@pytest.fixture
def streaming_agent(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    return Agent.objects.create(tenant=tenant, name="streamer", guide_model=model)


def test_a_cancel_of_a_running_turn_answers_202_cancelling_then_the_turn_ends_cancelled(
    streaming_agent, tenant, owner_client, model_server
):
    model_server.script([Reply(chunks=[f"word{i} " for i in range(200)], chunk_delay=0.02)])  # ~4 s of stream
    session = services.session_create(tenant=tenant, agent=streaming_agent)
    answers = {}

    def cancel_once_running() -> None:
        try:
            deadline = time.monotonic() + 10
            while not Turn.objects.filter(session=session, status=Turn.Status.RUNNING).exists():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
            answers["cancel"] = owner_client.post(f"/api/sessions/{session.pk}/cancel")
        finally:
            connection.close()

    canceller = threading.Thread(target=cancel_once_running)
    canceller.start()
    # The commit runs the turn here, on this thread, as a worker would; the cancel arrives mid-stream.
    _, turn = services.message_post(tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": "go"}])
    canceller.join()

    response = answers["cancel"]
    assert response.status_code == 202
    assert response.json()["status"] == "cancelling"
    assert response.json()["id"] == str(turn.pk)
    turn.refresh_from_db()
    assert turn.status == Turn.Status.CANCELLED
    assert owner_client.get(f"/api/turns/{turn.pk}").json()["status"] == "cancelled"
    assert owner_client.post(f"/api/sessions/{session.pk}/cancel").status_code == 404  # nothing active now
