"""Every agents route, probed with another tenant's ids and names (the project-wide isolation
test does the same once populate_agents is part of tests.factories.populate_tenant)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.tenancy.models import Role
from tests.agents.populate import populate_agents
from tests.factories import TenantFactory
from tests.test_tenant_isolation import _api_patterns, _methods

pytestmark = pytest.mark.django_db

AGENTS_ROUTE_PREFIXES = ("api/providers", "api/models", "api/agents", "api/roster", "api/breaker")


def test_populate_agents_covers_every_agents_model():
    from apps.agents.models import Agent, CatalogModel, Provider

    tenant = TenantFactory()
    values = populate_agents(tenant)
    for model in (Provider, CatalogModel, Agent):
        assert model.objects.filter(tenant=tenant).exists()
    assert len(values) == len(set(values)) == 5


def test_tenant_a_never_reaches_tenant_bs_agents_objects(make_client):
    tenant_a, tenant_b = TenantFactory(), TenantFactory()
    populate_agents(tenant_a)
    b_values = populate_agents(tenant_b)
    client = make_client(tenant_a, role=Role.OWNER)
    routes = [(r, p) for r, p in _api_patterns() if r.replace("^", "").startswith(AGENTS_ROUTE_PREFIXES)]
    assert len(routes) >= 10

    failures = []
    for route, pattern in routes:
        assert pattern.name, route
        kwarg_names = list(pattern.pattern.regex.groupindex)
        methods = _methods(pattern.callback)
        if not kwarg_names:
            text = client.get(reverse(pattern.name)).content.decode()
            failures += [f"GET {route} mentions {v}" for v in b_values if v in text]
            continue
        for value in b_values:
            url = reverse(pattern.name, kwargs=dict.fromkeys(kwarg_names, value))
            for method in methods:
                response = client.generic(method.upper(), url, data=json.dumps({}), content_type="application/json")
                if response.status_code not in (404, 405):
                    failures.append(f"{method.upper()} {url} -> {response.status_code}")
    assert not failures, "\n".join(failures)
