"""Every tools route, probed with another tenant's ids and names (the project-wide isolation test
does the same once populate_tools is part of tests.factories.populate_tenant)."""

from __future__ import annotations

import pytest

from apps.tenancy.models import Role
from apps.tools.models import AgentSkill, AiRule, Plugin, Skill
from tests.factories import TenantFactory
from tests.test_tenant_isolation import _api_patterns, probe_routes
from tests.tools.populate import populate_tools

pytestmark = pytest.mark.django_db

TOOLS_ROUTE_PREFIXES = ("api/plugins", "api/runtime/mcp", "api/editor", "api/skills", "api/settings/ai-rules")


def test_populate_tools_covers_every_tools_model():
    tenant = TenantFactory()
    values = populate_tools(tenant)
    for model in (Plugin, Skill, AgentSkill, AiRule):
        assert model.objects.filter(tenant=tenant).exists(), model
    assert Plugin.objects.filter(tenant=tenant, kind=Plugin.Kind.MCP).exists()
    assert Plugin.objects.filter(tenant=tenant, kind=Plugin.Kind.PYTHON).exists()
    assert Plugin.objects.filter(tenant=tenant, definition__isnull=False).exists()
    assert len(values) == len(set(values)) == 10


def test_tenant_a_never_reaches_tenant_bs_tools_objects(make_client):
    tenant_a, tenant_b = TenantFactory(), TenantFactory()
    populate_tools(tenant_a)
    b_values = populate_tools(tenant_b)
    client = make_client(tenant_a, role=Role.OWNER)
    routes = [(r, p) for r, p in _api_patterns() if r.replace("^", "").startswith(TOOLS_ROUTE_PREFIXES)]
    assert len(routes) >= 20

    _, failures = probe_routes(client, routes, b_values, leak_min_chars=1)
    assert not failures, "\n".join(failures)


def test_tenant_a_cannot_use_tenant_bs_names_in_bodies(make_client):
    tenant_a, tenant_b = TenantFactory(), TenantFactory()
    populate_tools(tenant_a)
    populate_tools(tenant_b)
    b_skill = Skill.objects.get(tenant=tenant_b)
    b_agent = AgentSkill.objects.get(tenant=tenant_b).agent
    client = make_client(tenant_a, role=Role.OWNER)
    # B's agent name is not an agent of A's; B's custom skill is not in the catalog.
    response = client.post("/api/skills/catalog/activate", {"name": b_skill.name, "agent": b_agent.name}, format="json")
    assert response.status_code == 400
    assert not AgentSkill.objects.filter(tenant=tenant_a, agent=b_agent).exists()
