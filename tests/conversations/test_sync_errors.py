"""The synchronous faces answer a failed turn with a status that says why, and name the turn."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentplatform.celery import app as celery_app
from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations.models import Turn
from tests.stubs.model_server import Reply

# transaction=True: the turn is enqueued on commit and (tests run tasks inline) done before the view waits.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_providers")]


@pytest.fixture
def no_worker():
    """Tasks go to the broker and nothing consumes them (tests otherwise run them inline)."""
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True


@pytest.fixture
def openai_agent(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    return Agent.objects.create(
        tenant=tenant, name="oai-agent", guide_model=CatalogModel.objects.get(provider=provider, model_id="stub-small")
    )


def test_agent_message_with_every_provider_down_is_502_naming_the_turn(owner_client, openai_agent, model_server):
    model_server.script([Reply(status=503)])
    response = owner_client.post("/api/agent/message", {"text": "hi", "agent": "oai-agent"}, format="json")
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "Turn failed: model provider"
    assert body["message"].startswith("No model could answer")
    assert Turn.objects.get(pk=body["turnId"]).status == Turn.Status.FAILED


def test_task_over_the_agents_cost_limit_is_402_naming_the_budget_and_the_task(
    owner_client, openai_agent, model_server
):
    CatalogModel.objects.filter(pk=openai_agent.guide_model_id).update(
        input_per_mtok=Decimal("1000"), output_per_mtok=Decimal("1000")
    )
    openai_agent.model_policy = {"max_cost_usd": 0.0001}
    openai_agent.save()
    response = owner_client.post(
        "/api/tasks", {"topic": "an expensive question " * 20, "agent": "oai-agent"}, format="json"
    )
    assert response.status_code == 402
    body = response.json()
    assert (body["error"], body["budget"]) == ("Budget exhausted", "agent_turn")
    assert "max_cost_usd" in body["message"]
    assert Turn.objects.get(pk=body["taskId"]).metadata["failure"] == "budget"
    assert model_server.requests == []


def test_agent_message_that_outlives_the_wait_is_504_naming_the_turn(owner_client, openai_agent, settings, no_worker):
    settings.SYNC_TURN_TIMEOUT_SECONDS = 0.2  # no worker runs in this test: the turn stays queued
    response = owner_client.post("/api/agent/message", {"text": "hi", "agent": "oai-agent"}, format="json")
    assert response.status_code == 504
    body = response.json()
    assert Turn.objects.get(pk=body["turnId"]).status == Turn.Status.QUEUED
    assert f"/api/turns/{body['turnId']}" in body["message"]


def test_task_in_a_tenant_without_an_enabled_agent_is_422(owner_client):
    response = owner_client.post("/api/tasks", {"topic": "anything"}, format="json")
    assert response.status_code == 422
    assert response.json()["error"] == "Not configured"
    assert Turn.objects.count() == 0


def test_agent_message_naming_an_unknown_agent_is_400(owner_client, openai_agent):
    response = owner_client.post("/api/agent/message", {"text": "hi", "agent": "nobody"}, format="json")
    assert response.status_code == 400
    assert "agent" in response.json()["fields"]
