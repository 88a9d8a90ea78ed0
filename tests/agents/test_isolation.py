"""Every agents route, probed with another tenant's ids and names (the project-wide isolation
test does the same once populate_agents is part of tests.factories.populate_tenant)."""

from __future__ import annotations

import pytest

from apps.tenancy.models import Role
from tests.agents.populate import populate_agents
from tests.factories import TenantFactory
from tests.test_tenant_isolation import _api_patterns, probe_routes

pytestmark = pytest.mark.django_db

AGENTS_ROUTE_PREFIXES = ("api/providers", "api/models", "api/agents", "api/roster", "api/breaker")


def test_populate_agents_covers_every_agents_model():
    from apps.agents.models import Agent, CatalogModel, PlatformProviderAccess, PlatformSpend, Provider

    tenant = TenantFactory()
    values = populate_agents(tenant)
    for model in (Provider, CatalogModel, Agent, PlatformProviderAccess, PlatformSpend):
        assert model.objects.filter(tenant=tenant).exists()
    assert Provider.objects.filter(tenant=tenant, platform__isnull=False).exists()
    assert len(values) == len(set(values)) == 7


def test_tenant_a_never_reaches_tenant_bs_agents_objects(make_client):
    tenant_a, tenant_b = TenantFactory(), TenantFactory()
    populate_agents(tenant_a)
    b_values = populate_agents(tenant_b)
    client = make_client(tenant_a, role=Role.OWNER)
    routes = [(r, p) for r, p in _api_patterns() if r.replace("^", "").startswith(AGENTS_ROUTE_PREFIXES)]
    assert len(routes) >= 10

    _, failures = probe_routes(client, routes, b_values, leak_min_chars=1)
    assert not failures, "\n".join(failures)
