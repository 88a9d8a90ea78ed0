"""Tools' rows for the cross-tenant isolation test (called from tests.factories.populate_tenant)."""

from __future__ import annotations

from apps.agents.models import Agent
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor
from apps.tools import rules, services, skills
from apps.tools.models import AgentSkill, Plugin, PluginDefinition


def populate_tools(tenant: Tenant) -> list[str]:
    """One Plugin of each kind a tenant owns (HTTP MCP, Python, an operator's stdio definition it
    enabled), a definition granted to it only and not enabled, Skill, AgentSkill and AiRule for
    `tenant`; returns every id and name a route could be given for them. Names carry the
    tenant's slug so two tenants never share one. The shared Python plugin's name (`text`) is
    not returned: every tenant may toggle it, so it is not a cross-tenant probe."""
    actor = Actor.system("populate")
    mcp = services.plugin_create(
        tenant=tenant,
        actor=actor,
        name=f"mcp-{tenant.slug}"[:32],
        config={"url": "http://mcp.invalid/mcp"},  # never called (.invalid never resolves, RFC 6761)
        secrets={"headers": {"Authorization": f"Bearer {tenant.slug}-secret"}},
        discover=False,
    )
    python = services.plugin_toggle(tenant=tenant, actor=actor, name="text", enabled=True)
    # Operator definitions granted to this tenant only: one enabled (its row made directly, as if
    # discovered, so no process starts), one merely offered.
    enabled_definition, offered = (
        PluginDefinition.objects.create(name=f"{prefix}-{tenant.slug}"[:32], command="/bin/false")
        for prefix in ("ops", "offer")
    )
    enabled_definition.granted_tenants.add(tenant)
    offered.granted_tenants.add(tenant)
    stdio = Plugin.objects.create(
        tenant=tenant,
        name=enabled_definition.name,
        kind=Plugin.Kind.MCP,
        config={"transport": "stdio"},
        definition=enabled_definition,
        status=Plugin.Status.READY,
    )
    skill = skills.skill_create(
        tenant=tenant, actor=actor, name=f"skill-{tenant.slug}"[:64], instructions="Be brief.", version="1"
    )
    agent = Agent.objects.filter(tenant=tenant).first() or Agent.objects.create(
        tenant=tenant, name=f"{tenant.slug}-tools-agent"
    )
    link = AgentSkill.objects.create(tenant=tenant, agent=agent, skill=skill)
    rule = rules.rule_create(tenant=tenant, actor=actor, text=f"Answer {tenant.slug} in English.")
    return [
        str(mcp.pk),
        mcp.name,
        str(python.pk),
        str(stdio.pk),
        stdio.name,
        offered.name,
        str(skill.pk),
        skill.name,
        str(link.pk),
        str(rule.pk),
    ]
