"""Agents' rows for the cross-tenant isolation test (called from tests.factories.populate_tenant)."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from apps.agents import services
from apps.agents.models import PlatformSpend, ProviderKind
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor


def populate_agents(tenant: Tenant) -> list[str]:
    """One Provider, CatalogModel and Agent for `tenant`; returns every id and name a route could
    be given for them. Names carry the tenant's slug so two tenants never share one (a shared
    name would make the probe find the caller's own object)."""
    actor = Actor.system("populate")
    provider = services.provider_create(
        tenant=tenant,
        actor=actor,
        kind=ProviderKind.OPENAI_COMPATIBLE,
        name=f"{tenant.slug}-provider",
        base_url="http://models.invalid/v1",  # never called (.invalid never resolves, RFC 6761)
        api_key=f"sk-{tenant.slug}-populate-key",
        models=[f"{tenant.slug}-model"],
    )
    model = provider.models.get()
    agent = services.agent_create(tenant=tenant, actor=actor, name=f"{tenant.slug}-agent", guide_model=model)
    # A platform provider granted to this tenant only, and its link: another tenant must not see either.
    platform = services.platform_provider_save(
        actor=actor,
        platform_provider=None,
        name=f"{tenant.slug}-platform",
        kind=ProviderKind.OPENAI,
        available_to_all_tenants=False,
        api_key=f"sk-{tenant.slug}-platform-key",
    )
    services.platform_access_set(tenant=tenant, platform_provider=platform, allowed=True)
    link = services.platform_provider_link(tenant=tenant, actor=actor, platform_provider=platform, models=[])
    # What budget_settle writes after a call through the link.
    PlatformSpend.objects.create(
        tenant=tenant, platform_provider=platform, month=timezone.now().date().replace(day=1), cost_usd=Decimal("0.01")
    )
    return [str(provider.pk), provider.name, str(model.pk), str(agent.pk), agent.name, str(link.pk), platform.name]
