from __future__ import annotations

import pytest

from apps.agents.services import tenant_bootstrap_agents
from apps.tenancy.principal import Actor


@pytest.fixture
def agent(tenant):
    """The tenant's default agent on the offline model, with the built-in tools."""
    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    from apps.agents.models import Agent

    return Agent.objects.get(tenant=tenant, name="assistant")


@pytest.fixture
def chat(agent, owner_client, django_capture_on_commit_callbacks):
    """`chat(text)` posts to a new session and runs the queued turn inline; returns the turn."""
    from apps.conversations.models import Turn

    session_id = owner_client.post("/api/sessions", {"agent": agent.name}, format="json").json()["id"]

    def send(text: str, session: str | None = None) -> Turn:
        with django_capture_on_commit_callbacks(execute=True):
            response = owner_client.post(
                f"/api/sessions/{session or session_id}/messages", {"text": text}, format="json"
            )
        assert response.status_code == 202, response.json()
        return Turn.objects.get(pk=response.json()["turn_id"])

    send.session_id = session_id
    return send
