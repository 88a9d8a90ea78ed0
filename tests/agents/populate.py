"""Agents' rows for the cross-tenant isolation test (called from tests.factories.populate_tenant)."""

from __future__ import annotations

from apps.agents import services
from apps.agents.models import ProviderKind
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
    return [str(provider.pk), provider.name, str(model.pk), str(agent.pk), agent.name]
