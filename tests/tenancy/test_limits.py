"""The tenant settings max_sessions and max_agents hold: one more is a 409 that names the limit."""

from __future__ import annotations

import pytest

from apps.agents.services import tenant_bootstrap_agents
from apps.conversations.models import ChatSession
from apps.tenancy.principal import Actor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def default_agents(tenant, other_tenant):
    # Sessions need an agent to talk to; the default one counts towards max_agents.
    for each in (tenant, other_tenant):
        tenant_bootstrap_agents(tenant=each, actor=Actor.system("test"))


def _limit(client, **settings):
    response = client.patch("/api/tenants/current", {"settings": settings}, format="json")
    assert response.status_code == 200, response.json()


def test_max_sessions_refuses_one_more_session_with_a_clear_message(tenant, owner_client):
    _limit(owner_client, max_sessions=2)
    assert [owner_client.post("/api/sessions", {}, format="json").status_code for _ in range(2)] == [201, 201]
    refused = owner_client.post("/api/sessions", {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"] == "Conflict"
    assert "max_sessions limit (2 of 2 sessions)" in refused.json()["message"]
    assert "PATCH /api/tenants/current" in refused.json()["message"]
    assert ChatSession.objects.filter(tenant=tenant).count() == 2

    _limit(owner_client, max_sessions=None)  # null lifts it
    assert owner_client.post("/api/sessions", {}, format="json").status_code == 201


def test_deleting_a_session_frees_a_slot(tenant, owner_client):
    _limit(owner_client, max_sessions=1)
    first = owner_client.post("/api/sessions", {}, format="json").json()["id"]
    assert owner_client.post("/api/sessions", {}, format="json").status_code == 409
    assert owner_client.delete(f"/api/sessions/{first}").status_code == 204
    assert owner_client.post("/api/sessions", {}, format="json").status_code == 201


def test_max_agents_refuses_one_more_agent(tenant, owner_client):
    _limit(owner_client, max_agents=1)
    refused = owner_client.post("/api/agents", {"name": "helper"}, format="json")
    assert refused.status_code == 409
    assert "max_agents limit (1 of 1 agents)" in refused.json()["message"]
    _limit(owner_client, max_agents=2)
    allowed = owner_client.post("/api/agents", {"name": "helper"}, format="json")
    assert allowed.status_code == 201, allowed.json()


def test_other_tenants_limits_do_not_apply(tenant, other_tenant, owner_client, make_client):
    _limit(owner_client, max_sessions=0)
    assert owner_client.post("/api/sessions", {}, format="json").status_code == 409
    assert make_client(other_tenant).post("/api/sessions", {}, format="json").status_code == 201
