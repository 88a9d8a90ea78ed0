"""The operators' pages: they render, and a provider's key never appears on them."""

from __future__ import annotations

import pytest

from apps.agents import services
from apps.agents.crypto import decrypt_secret
from apps.agents.models import Agent, CatalogModel, ModelPrice, Provider
from apps.tenancy.models import AuditLog
from apps.tenancy.principal import Actor
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-admin-entered-secret-0000WXYZ"


@pytest.fixture
def operator(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def bootstrapped(tenant):
    return services.tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))


@pytest.mark.parametrize("model", ["provider", "modelprice", "catalogmodel", "agent", "platformprovider"])
def test_changelists_and_forms_render(operator, bootstrapped, model):
    assert operator.get(f"/admin/agents/{model}/").status_code == 200
    assert operator.get(f"/admin/agents/{model}/add/").status_code == 200


def test_change_pages_render(operator, bootstrapped):
    provider = Provider.objects.get(tenant=bootstrapped.tenant)
    catalog = CatalogModel.objects.get(tenant=bootstrapped.tenant)
    for url in (
        f"/admin/agents/provider/{provider.pk}/change/",
        f"/admin/agents/catalogmodel/{catalog.pk}/change/",
        f"/admin/agents/agent/{bootstrapped.pk}/change/",
        f"/admin/agents/modelprice/{ModelPrice.objects.get(model_id='gpt-4o').pk}/change/",
    ):
        assert operator.get(url).status_code == 200, url


def test_adding_a_provider_encrypts_the_key_and_no_page_shows_it(operator, tenant):
    response = operator.post(
        "/admin/agents/provider/add/",
        {
            "tenant": tenant.pk,
            "name": "from-admin",
            "kind": "openai",
            "base_url": "",
            "enabled": "on",
            "options": "{}",
            "new_api_key": SECRET,
            "models-TOTAL_FORMS": "0",
            "models-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert response.status_code == 200
    provider = Provider.objects.get(tenant=tenant, name="from-admin")
    assert decrypt_secret(provider.api_key_encrypted) == SECRET
    assert provider.api_key_hint == "sk-…WXYZ"
    assert provider.models.filter(model_id="gpt-4o-mini").exists()  # the service made the catalog
    assert AuditLog.objects.filter(action="provider.created", target_id=str(provider.pk)).exists()
    for url in ("/admin/agents/provider/", f"/admin/agents/provider/{provider.pk}/change/"):
        html = operator.get(url).content.decode()
        assert SECRET not in html
        assert provider.api_key_encrypted not in html
        assert "sk-…WXYZ" in html


def test_changing_and_clearing_the_key_in_the_admin(operator, tenant):
    provider = services.provider_create(
        tenant=tenant, actor=Actor.system("test"), kind="openai", name="p", api_key="sk-old-key-111111", models=[]
    )
    form = {"name": "p", "base_url": "", "enabled": "on", "options": "{}", "models-TOTAL_FORMS": "0",
            "models-INITIAL_FORMS": "0"}  # fmt: skip
    operator.post(f"/admin/agents/provider/{provider.pk}/change/", {**form, "new_api_key": SECRET})
    provider.refresh_from_db()
    assert decrypt_secret(provider.api_key_encrypted) == SECRET
    operator.post(f"/admin/agents/provider/{provider.pk}/change/", {**form, "clear_api_key": "on"})
    provider.refresh_from_db()
    assert (provider.api_key_encrypted, provider.api_key_hint) == ("", "")


def test_an_agent_cannot_get_another_tenants_model(operator, bootstrapped, other_tenant):
    theirs = services.tenant_bootstrap_agents(tenant=other_tenant, actor=Actor.system("test"))
    response = operator.post(
        f"/admin/agents/agent/{bootstrapped.pk}/change/",
        {
            "tenant": bootstrapped.tenant.pk,
            "name": "assistant",
            "guide_model": theirs.guide_model.pk,
            "model_policy": "{}",
            "max_steps": 10,
            "enabled_tools": "[]",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "another tenant" in response.content.decode()
    assert Agent.objects.get(pk=bootstrapped.pk).guide_model_id == bootstrapped.guide_model_id


PLATFORM_SECRET = "sk-operator-platform-secret-0000QRST"


def test_operators_add_a_platform_provider_with_a_write_only_key_and_grant_a_tenant(operator, tenant):
    from apps.agents.models import PlatformProvider, PlatformProviderAccess

    assert operator.get("/admin/agents/platformprovider/add/").status_code == 200
    response = operator.post(
        "/admin/agents/platformprovider/add/",
        {
            "name": "gateway",
            "kind": "openai_compatible",
            "base_url": "http://llm-gateway:8000/v1",
            "enabled": "on",
            "options": "{}",
            "new_api_key": PLATFORM_SECRET,
            "access-TOTAL_FORMS": "1",
            "access-INITIAL_FORMS": "0",
            "access-0-tenant": str(tenant.pk),
            "access-0-allowed": "on",
            "access-0-monthly_cap_usd": "12.50",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    platform = PlatformProvider.objects.get(name="gateway")
    assert decrypt_secret(platform.api_key_encrypted) == PLATFORM_SECRET
    assert platform.available_to_all_tenants is False
    access = PlatformProviderAccess.objects.get(platform_provider=platform, tenant=tenant)
    assert str(access.monthly_cap_usd) == "12.5000"
    page = operator.get(f"/admin/agents/platformprovider/{platform.pk}/change/").content.decode()
    assert platform.api_key_hint in page
    assert PLATFORM_SECRET not in page
    assert platform.api_key_encrypted not in page
    assert operator.get("/admin/agents/platformprovideraccess/").status_code == 200


def test_operators_can_disable_a_tenants_link_without_touching_the_platform_row(operator, tenant, settings):
    settings.OPENAI_API_KEY = PLATFORM_SECRET
    services.tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    link = Provider.objects.get(tenant=tenant, platform__name="openai")
    page = operator.get(f"/admin/agents/provider/{link.pk}/change/").content.decode()
    assert PLATFORM_SECRET not in page
    response = operator.post(
        f"/admin/agents/provider/{link.pk}/change/",
        {"name": "openai", "base_url": "", "options": "{}", "models-TOTAL_FORMS": "0", "models-INITIAL_FORMS": "0"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    link.refresh_from_db()
    assert link.enabled is False
    assert decrypt_secret(link.platform.api_key_encrypted) == PLATFORM_SECRET


def test_the_spend_ledger_is_readable_and_not_editable(operator, tenant):
    from decimal import Decimal

    from django.utils import timezone

    from apps.agents.models import PlatformSpend

    platform = services.platform_provider_save(
        actor=Actor.system("test"), platform_provider=None, name="gw", kind="openai", api_key=PLATFORM_SECRET
    )
    PlatformSpend.objects.create(
        tenant=tenant, platform_provider=platform, month=timezone.now().date().replace(day=1), cost_usd=Decimal("0.75")
    )
    page = operator.get("/admin/agents/platformspend/")
    assert page.status_code == 200
    assert "0.750000" in page.content.decode()
    assert operator.get("/admin/agents/platformspend/add/").status_code == 403
