"""/api/agents, /api/roster and model policies."""

from __future__ import annotations

import pytest

from apps.agents import services
from apps.agents.models import Agent, ProviderKind
from apps.tenancy.models import AuditLog, Role
from apps.tenancy.principal import Actor

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")


@pytest.fixture
def models(tenant):
    """`local/chat` (tools, no vision) and `local/eyes` (vision)."""
    provider = services.provider_create(
        tenant=tenant,
        actor=ACTOR,
        kind=ProviderKind.OPENAI_COMPATIBLE,
        name="local",
        base_url="http://models.invalid/v1",
        models=[],
    )
    services.catalog_model_create(tenant=tenant, provider=provider, model_id="chat", supports_vision=False)
    services.catalog_model_create(tenant=tenant, provider=provider, model_id="eyes", supports_vision=True)
    return provider


def create_agent(client, **body):
    return client.post("/api/agents", {"name": "helper", "guide_model": "local/chat", **body}, format="json")


def test_create_with_model_refs_and_read_back(tenant, owner_client, models):
    response = create_agent(
        owner_client,
        system_prompt="Be kind.",
        vision_model="local/eyes",
        enabled_tools=["calculator", "calculator", "current_time"],
        model_policy={"require_tools": True, "preferred_models": ["local/eyes"]},
        temperature=0.2,
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["guide_model"], body["specialist_model"], body["vision_model"]) == ("local/chat", None, "local/eyes")
    assert body["enabled_tools"] == ["calculator", "current_time"]
    assert body["model_policy"] == {
        "require_tools": True,
        "require_vision": False,
        "max_cost_usd": None,
        "preferred_models": ["local/eyes"],
    }
    assert owner_client.get(f"/api/agents/{body['id']}").json() == body
    assert [a["name"] for a in owner_client.get("/api/agents").json()["results"]] == ["helper"]
    assert AuditLog.objects.filter(tenant=tenant, action="agent.created", target_id=body["id"]).exists()


def test_unknown_refs_and_bad_values_are_400_naming_the_field(owner_client, models):
    response = create_agent(owner_client, guide_model="local/nope")
    assert response.status_code == 400
    assert "guide_model" in response.json()["fields"]
    response = create_agent(owner_client, max_steps=0, temperature=5)
    assert set(response.json()["fields"]) == {"max_steps", "temperature"}
    response = create_agent(owner_client, model_policy={"max_cost": 1})
    assert "model_policy" in response.json()["fields"]


def test_another_tenants_model_cannot_be_assigned(tenant, other_tenant, owner_client, models):
    services.provider_create(
        tenant=other_tenant, actor=ACTOR, kind=ProviderKind.OFFLINE, name="theirs", models=["secret-model"]
    )
    response = create_agent(owner_client, guide_model="theirs/secret-model")
    assert response.status_code == 400


def test_update_clear_and_delete(tenant, owner_client, models):
    agent_id = create_agent(owner_client, vision_model="local/eyes").json()["id"]
    response = owner_client.patch(
        f"/api/agents/{agent_id}", {"vision_model": None, "description": "Helps."}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["vision_model"], response.json()["description"]) == (None, "Helps.")
    assert response.json()["guide_model"] == "local/chat"  # untouched
    assert owner_client.delete(f"/api/agents/{agent_id}").status_code == 204
    assert not Agent.objects.filter(pk=agent_id).exists()


def test_duplicate_name_is_a_conflict(owner_client, models):
    create_agent(owner_client)
    assert create_agent(owner_client).status_code == 409


def test_roles_for_agents(tenant, make_client, owner_client, models):
    agent_id = create_agent(owner_client).json()["id"]
    viewer = make_client(tenant, role=Role.VIEWER)
    member = make_client(tenant, role=Role.MEMBER)
    assert viewer.get("/api/agents").status_code == 200
    assert viewer.get(f"/api/agents/{agent_id}/model-policy").status_code == 200
    assert create_agent(member, name="other").status_code == 403
    assert member.patch(f"/api/agents/{agent_id}", {"enabled": False}, format="json").status_code == 403
    assert member.put(f"/api/agents/{agent_id}/model-policy", {}, format="json").status_code == 403
    assert member.put("/api/roster/helper/model", {"role": "guide", "model": None}, format="json").status_code == 403


def test_roster_shows_assigned_and_effective_models(owner_client, models):
    create_agent(owner_client, specialist_model="local/eyes")
    [entry] = owner_client.get("/api/roster").json()["results"]
    assert entry["name"] == "helper"
    assert entry["models"]["guide"] == {
        "ref": "local/chat",
        "supports_tools": True,
        "supports_vision": False,
        "enabled": True,
    }
    assert entry["models"]["vision"] is None
    assert entry["effective"] == {"guide": "local/chat", "specialist": "local/eyes", "vision": "local/chat"}


def test_assign_a_role_model_by_agent_name(owner_client, models):
    create_agent(owner_client)
    response = owner_client.put("/api/roster/helper/model", {"role": "vision", "model": "local/eyes"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["effective"]["vision"] == "local/eyes"

    refused = owner_client.put("/api/roster/helper/model", {"role": "vision", "model": "local/chat"}, format="json")
    assert refused.status_code == 400
    assert "images" in refused.json()["fields"]["model"][0]

    cleared = owner_client.put("/api/roster/helper/model", {"role": "vision", "model": None}, format="json")
    assert cleared.json()["models"]["vision"] is None
    bad_role = owner_client.put("/api/roster/helper/model", {"role": "boss", "model": None}, format="json")
    assert bad_role.status_code == 400
    missing = owner_client.put("/api/roster/nobody/model", {"role": "guide", "model": None}, format="json")
    assert missing.status_code == 404


def test_model_policy_get_and_put(owner_client, models):
    agent_id = create_agent(owner_client).json()["id"]
    url = f"/api/agents/{agent_id}/model-policy"
    assert owner_client.get(url).json() == {
        "require_tools": False,
        "require_vision": False,
        "max_cost_usd": None,
        "preferred_models": [],
    }
    policy = {"require_tools": True, "require_vision": False, "max_cost_usd": 0.05, "preferred_models": ["local/eyes"]}
    response = owner_client.put(url, policy, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == policy
    assert owner_client.get(url).json() == policy

    unknown_ref = owner_client.put(url, {"preferred_models": ["cloud/ghost"]}, format="json")
    assert unknown_ref.status_code == 400
    assert "cloud/ghost" in str(unknown_ref.json()["fields"])
    unknown_key = owner_client.put(url, {"max_cost": 1}, format="json")
    assert unknown_key.status_code == 400
    negative = owner_client.put(url, {"max_cost_usd": -1}, format="json")
    assert negative.status_code == 400


def test_another_tenants_agent_is_not_found(other_tenant, owner_client):
    theirs = services.agent_create(tenant=other_tenant, actor=ACTOR, name="theirs")
    assert owner_client.get(f"/api/agents/{theirs.pk}").status_code == 404
    assert owner_client.put(f"/api/agents/{theirs.pk}/model-policy", {}, format="json").status_code == 404
    assert owner_client.put("/api/roster/theirs/model", {}, format="json").status_code == 404
