"""tenant_bootstrap_agents: a working agent for a new tenant, from whatever is configured."""

from __future__ import annotations

import socket

import pytest

from apps.agents import services
from apps.agents.breaker import guarded_chat
from apps.agents.crypto import decrypt_secret
from apps.agents.models import Agent, CatalogModel, PlatformProvider, Provider
from apps.agents.providers.base import ChatMessage, ToolSpec
from apps.agents.routing import select_model
from apps.tenancy.principal import Actor

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("bootstrap")


@pytest.fixture(autouse=True)
def no_environment_providers(settings):
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.ANTHROPIC_API_KEY = ""
    settings.ANTHROPIC_BASE_URL = ""
    settings.OLLAMA_HOST = ""


def counts(tenant) -> tuple[int, int, int]:
    return (
        Provider.objects.filter(tenant=tenant).count(),
        CatalogModel.objects.filter(tenant=tenant).count(),
        Agent.objects.filter(tenant=tenant).count(),
    )


def test_with_nothing_configured_the_assistant_runs_offline(tenant):
    agent = services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    assert agent.name == "assistant"
    assert agent.guide_model.ref == "offline/offline-small"
    assert agent.enabled_tools == [
        "current_time",
        "calculator",
        "http_get",
        "remember",
        "recall",
        "schedule_task",
        "list_scheduled_tasks",
        "cancel_scheduled_task",
    ]
    assert "helpful assistant" in agent.system_prompt
    assert counts(tenant) == (1, 1, 1)


def test_bootstrap_is_idempotent_and_keeps_the_tenants_changes(tenant):
    agent = services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    services.agent_update(tenant=tenant, actor=ACTOR, agent=agent, system_prompt="Mine now.")
    before = counts(tenant)
    again = services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    assert again.pk == agent.pk
    assert again.system_prompt == "Mine now."
    assert counts(tenant) == before


def test_a_fresh_tenant_completes_a_tool_call_turn_offline(tenant):
    agent = services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    selection = select_model(agent=agent, text="What time is it?", has_images=False, needs_tools=True)
    clock = ToolSpec(name="current_time", description="Now.", parameters={"type": "object", "properties": {}})
    result = guarded_chat(
        selection.chosen.provider,
        model=selection.chosen.model_id,
        messages=[ChatMessage(role="user", content="What time is it?")],
        tools=[clock],
        temperature=None,
        max_output_tokens=None,
        on_text=lambda _: None,
    )
    assert result.offline is True
    assert result.tool_calls[0].name == "current_time"


def test_environment_providers_are_linked_not_copied_and_the_cheapest_model_guides(tenant, settings, model_server):
    settings.OPENAI_API_KEY = "sk-env-openai-key-1234"
    settings.OPENAI_BASE_URL = model_server.openai_base_url
    settings.ANTHROPIC_API_KEY = "sk-ant-env-key-5678"
    agent = services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)

    platform = PlatformProvider.objects.get(name="openai")
    assert platform.from_environment is True
    assert platform.base_url == model_server.openai_base_url
    assert decrypt_secret(platform.api_key_encrypted) == "sk-env-openai-key-1234"
    assert platform.api_key_hint == "sk-…1234"
    openai = Provider.objects.get(tenant=tenant, name="openai")
    assert openai.kind == "openai"
    assert openai.platform_id == platform.pk
    # The tenant's row holds nothing of the operator's: no key, no endpoint.
    assert (openai.api_key_encrypted, openai.api_key_hint, openai.base_url, openai.options) == ("", "", "", {})
    assert set(openai.models.values_list("model_id", flat=True)) >= {"gpt-4o-mini", "gpt-4.1-nano"}
    assert Provider.objects.get(tenant=tenant, name="anthropic").models.filter(model_id="claude-opus-4-0").exists()
    # gpt-4.1-nano: $0.10 + $0.40 per Mtok, the cheapest of the price table's models
    assert agent.guide_model.ref == "openai/gpt-4.1-nano"
    assert Provider.objects.filter(tenant=tenant, kind="offline").exists()


def test_environment_platform_providers_are_upserted_never_duplicated(tenant, other_tenant, settings):
    settings.OPENAI_API_KEY = "sk-env-openai-key-1234"
    services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    settings.OPENAI_API_KEY = "sk-env-openai-rotated-9999"
    services.tenant_bootstrap_agents(tenant=other_tenant, actor=ACTOR)
    assert PlatformProvider.objects.filter(name="openai").count() == 1
    assert decrypt_secret(PlatformProvider.objects.get(name="openai").api_key_encrypted) == "sk-env-openai-rotated-9999"
    # Both tenants link the one row, so the rotated key serves both at once.
    assert Provider.objects.filter(platform__name="openai").count() == 2


def test_ollama_models_are_listed_live(tenant, settings, model_server):
    model_server.models = ["llama3.2", "qwen2.5-coder"]
    settings.OLLAMA_HOST = model_server.url.removeprefix("http://")  # Ollama's own style: no scheme
    agent = services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    ollama = Provider.objects.get(tenant=tenant, name="ollama")
    assert ollama.kind == "ollama"
    assert ollama.base_url == ""
    assert ollama.platform.base_url == f"{model_server.url}/v1"
    assert sorted(ollama.models.values_list("model_id", flat=True)) == ["llama3.2", "qwen2.5-coder"]
    assert agent.guide_model.provider_id == ollama.pk  # free, so the cheapest


def test_unreachable_ollama_gives_a_provider_without_models(tenant, settings):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.OLLAMA_HOST = f"http://127.0.0.1:{port}"
    agent = services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    assert not Provider.objects.get(tenant=tenant, name="ollama").models.exists()
    assert agent.guide_model.ref == "offline/offline-small"


def test_existing_providers_are_left_alone(tenant, settings):
    settings.OPENAI_API_KEY = "sk-env-openai-key-1234"
    mine = services.provider_create(
        tenant=tenant, actor=ACTOR, kind="openai", name="openai", api_key="sk-tenant-own-key-99", models=["gpt-4o"]
    )
    services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    mine.refresh_from_db()
    assert decrypt_secret(mine.api_key_encrypted) == "sk-tenant-own-key-99"
    assert mine.platform_id is None
    assert list(mine.models.values_list("model_id", flat=True)) == ["gpt-4o"]
    # The platform's openai is linked under a name of its own.
    assert Provider.objects.get(tenant=tenant, name="openai-platform").platform.name == "openai"


def test_a_tenant_the_operator_did_not_grant_gets_no_link(tenant, settings):
    settings.OPENAI_API_KEY = "sk-env-openai-key-1234"
    platform = services.platform_providers_sync_from_env()[0]
    services.platform_access_set(tenant=tenant, platform_provider=platform, allowed=False)
    agent = services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    assert not Provider.objects.filter(tenant=tenant, platform__isnull=False).exists()
    assert agent.guide_model.ref == "offline/offline-small"


def test_every_migrate_brings_a_rotated_environment_key_to_the_platform_row(settings):
    from django.apps import apps as django_apps
    from django.db.models.signals import post_migrate

    settings.OPENAI_API_KEY = "sk-env-openai-key-1234"
    services.platform_providers_sync_from_env()
    settings.OPENAI_API_KEY = "sk-env-openai-rotated-5678"
    config = django_apps.get_app_config("agents")
    post_migrate.send(sender=config, app_config=config, verbosity=0, interactive=False, using="default", plan=[])
    assert decrypt_secret(PlatformProvider.objects.get(name="openai").api_key_encrypted) == "sk-env-openai-rotated-5678"
