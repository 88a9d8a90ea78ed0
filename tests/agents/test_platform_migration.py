"""Migration 0004: tenant rows holding a copy of a platform key become links, their copy erased."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps

from apps.agents import services
from apps.agents.crypto import encrypt_secret
from apps.agents.models import PlatformProvider, Provider
from apps.tenancy.principal import Actor

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
PLATFORM_KEY = "sk-platform-openai-CANARY-migrate-7777"
link_copies = importlib.import_module("apps.agents.migrations.0004_link_platform_key_copies").link_copies


@pytest.fixture(autouse=True)
def environment(settings):
    settings.OPENAI_API_KEY = PLATFORM_KEY
    settings.OPENAI_BASE_URL = ""
    settings.ANTHROPIC_API_KEY = ""
    settings.OLLAMA_HOST = "http://operator-ollama:11434"


def old_style_copy(tenant, **fields) -> Provider:
    """A row as the old bootstrap made it: the platform key copied in."""
    return Provider.objects.create(
        tenant=tenant, kind="openai", name="openai", api_key_encrypted=encrypt_secret(PLATFORM_KEY), **fields
    )


def test_a_copied_platform_key_becomes_a_link_and_the_copy_is_erased(tenant):
    copy = old_style_copy(tenant, api_key_hint="sk-…7777")
    services.catalog_model_create(tenant=tenant, provider=copy, model_id="gpt-4o-mini")
    link_copies(django_apps, None)
    copy.refresh_from_db()
    assert copy.platform == PlatformProvider.objects.get(name="openai")
    assert (copy.api_key_encrypted, copy.api_key_hint, copy.base_url) == ("", "", "")
    assert copy.models.filter(model_id="gpt-4o-mini").exists()  # agents keep their models


def test_a_copy_already_redirected_to_a_tenant_host_is_converted_too(tenant):
    copy = old_style_copy(tenant, base_url="http://attacker.example/v1", options={"headers": {"X-A": "b"}})
    link_copies(django_apps, None)
    copy.refresh_from_db()
    assert copy.platform is not None
    assert (copy.base_url, copy.options, copy.api_key_encrypted) == ("", {}, "")


def test_the_operators_ollama_row_becomes_a_link_and_a_tenants_own_key_stays(tenant):
    ollama = Provider.objects.create(
        tenant=tenant, kind="ollama", name="ollama", base_url="http://operator-ollama:11434/v1"
    )
    own = services.provider_create(
        tenant=tenant, actor=ACTOR, kind="openai", name="own", api_key="sk-tenant-own-key-1234", models=[]
    )
    link_copies(django_apps, None)
    ollama.refresh_from_db()
    own.refresh_from_db()
    assert ollama.platform.name == "ollama"
    assert ollama.base_url == ""
    assert own.platform is None
    assert own.api_key_hint == "sk-…1234"


def test_a_second_copy_in_one_tenant_loses_its_key_and_is_disabled(tenant):
    first = old_style_copy(tenant)
    second = Provider.objects.create(
        tenant=tenant, kind="openai", name="openai-2", api_key_encrypted=encrypt_secret(PLATFORM_KEY)
    )
    link_copies(django_apps, None)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.platform is not None
    assert second.platform is None
    assert second.api_key_encrypted == ""
    assert second.enabled is False


def test_running_it_again_changes_nothing(tenant):
    old_style_copy(tenant)
    link_copies(django_apps, None)
    before = list(Provider.objects.values_list("pk", "platform_id", "api_key_encrypted"))
    link_copies(django_apps, None)
    assert list(Provider.objects.values_list("pk", "platform_id", "api_key_encrypted")) == before
    assert PlatformProvider.objects.filter(name="openai").count() == 1
