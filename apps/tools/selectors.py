"""Reads for plugins: the tenant's plugins as the API shows them, and its MCP clients' state."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from apps.tenancy.models import Tenant
from apps.tools import definitions
from apps.tools import plugins as plugin_code
from apps.tools.models import AgentSkill, Plugin, PluginDefinition, Skill
from apps.tools.services import header_hints


def skill_list(*, tenant: Tenant) -> QuerySet[Skill]:
    """The tenant's skills by name, each with the agents it is enabled for (`agent_links`)."""
    links = AgentSkill.objects.select_related("agent").order_by("agent__name")
    return (
        Skill.objects.filter(tenant=tenant).prefetch_related(Prefetch("agent_links", queryset=links)).order_by("name")
    )


def plugin_get(*, tenant: Tenant, name: str) -> Plugin | None:
    return Plugin.objects.filter(tenant=tenant, name=name).first()


def _tool_entries(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": tool["name"],
            "remote_name": tool.get("remote_name", ""),
            "description": tool.get("description", ""),
            "side_effect": tool.get("side_effect", ""),
            "parameters": tool.get("parameters", {}),
        }
        for tool in tools
    ]


def _builtin_entry() -> dict[str, Any]:
    return {
        "id": None,
        "name": plugin_code.BUILTIN_PLUGIN_NAME,
        "kind": Plugin.Kind.BUILTIN,
        "description": "The tools built into the platform (named without a plugin prefix).",
        "version": "",
        "enabled": True,
        "status": Plugin.Status.READY,
        "status_message": "",
        "tools": _tool_entries(plugin_code.describe_tools(plugin_code.builtin_tools())),
        "discovered_at": None,
        "registered_by": "platform",
        "config": {},
        "headers": [],
    }


def _python_entry(code: plugin_code.PythonPlugin, row: Plugin | None) -> dict[str, Any]:
    return {
        "id": str(row.pk) if row else None,
        "name": code.name,
        "kind": Plugin.Kind.PYTHON,
        "description": code.description,
        "version": code.version,
        "enabled": bool(row and row.enabled),
        "status": Plugin.Status.READY,
        "status_message": "",
        "tools": _tool_entries(plugin_code.describe_tools(plugin_code.python_plugin_tools(code))),
        "discovered_at": row.discovered_at if row else None,
        "registered_by": "platform",
        "config": {},
        "headers": [],
    }


def _definition_entry(definition: PluginDefinition) -> dict[str, Any]:
    """An operator's stdio server the tenant may enable and has not yet: what it is, not how it
    runs (its argv, environment and folder are the operator's)."""
    return {
        "id": None,
        "name": definition.name,
        "kind": Plugin.Kind.MCP,
        "description": definition.description,
        "version": "",
        "enabled": False,
        "status": Plugin.Status.NEW,
        "status_message": f"Provided by the operator; enable it with PUT /api/plugins/{definition.name}/toggle.",
        "tools": [],
        "discovered_at": None,
        "registered_by": "operator",
        "config": {"transport": "stdio"},
        "headers": [],
    }


def plugin_entry(plugin: Plugin) -> dict[str, Any]:
    """A Plugin row as the API shows it: the secrets by name only."""
    if plugin.kind == Plugin.Kind.PYTHON:
        code = plugin_code.python_plugins().plugins.get(plugin.name)
        if code is not None:
            return _python_entry(code, plugin)
    unavailable = plugin.kind == Plugin.Kind.PYTHON
    http = plugin.kind == Plugin.Kind.MCP and (plugin.config or {}).get("transport") == "http"
    return {
        "id": str(plugin.pk),
        "name": plugin.name,
        "kind": plugin.kind,
        "description": plugin.description,
        "version": "",
        "enabled": plugin.enabled,
        "status": Plugin.Status.UNAVAILABLE if unavailable else plugin.status,
        "status_message": "The plugin's code is not installed." if unavailable else plugin.status_message,
        "tools": _tool_entries(plugin.discovered_tools or []),
        "discovered_at": plugin.discovered_at,
        "registered_by": "tenant" if http else ("operator" if plugin.definition_id else "platform"),
        # A stdio row shows only its transport: the argv is the operator's (or, for a row disabled by
        # migration 0003, the tenant's own old registration, which never runs again).
        "config": (plugin.config or {}) if http else {"transport": (plugin.config or {}).get("transport", "")},
        "headers": header_hints(plugin) if http else [],
    }


def plugin_list(*, tenant: Tenant) -> list[dict[str, Any]]:
    """Built-ins first, then every plugin by name: the tenant's rows, and the Python plugins
    installed on the platform that the tenant has not enabled yet."""
    rows = {plugin.name: plugin for plugin in Plugin.objects.filter(tenant=tenant).select_related("definition")}
    entries = [plugin_entry(row) for row in rows.values()]
    entries += [
        _python_entry(code, None) for name, code in plugin_code.python_plugins().plugins.items() if name not in rows
    ]
    entries += [_definition_entry(d) for d in definitions.definitions_for_tenant(tenant=tenant) if d.name not in rows]
    return [_builtin_entry(), *sorted(entries, key=lambda entry: entry["name"])]


def mcp_runtime(*, tenant: Tenant) -> list[dict[str, Any]]:
    """The tenant's MCP plugins with their last discovery and this process's connection."""
    from apps.tools.mcp_client import manager

    connections = manager.status()
    clients = []
    for plugin in Plugin.objects.filter(tenant=tenant, kind=Plugin.Kind.MCP).order_by("name"):
        connection = connections.get(str(plugin.pk))
        if connection is not None and connection["generation"] != plugin.generation:
            connection = None  # made for an older config; closed when next used
        clients.append(
            {
                "name": plugin.name,
                "transport": (plugin.config or {}).get("transport", ""),
                "enabled": plugin.enabled,
                "status": plugin.status,
                "status_message": plugin.status_message,
                "tool_count": len(plugin.discovered_tools or []),
                "discovered_at": plugin.discovered_at,
                "connection": connection,
            }
        )
    return clients


def plugin_entry_by_name(*, tenant: Tenant, name: str) -> dict[str, Any] | None:
    """One plugin as GET /api/plugins shows it (built-ins and not-yet-enabled Python plugins too)."""
    row = plugin_get(tenant=tenant, name=name)
    if row is not None:
        return plugin_entry(row)
    if name == plugin_code.BUILTIN_PLUGIN_NAME:
        return _builtin_entry()
    code = plugin_code.python_plugins().plugins.get(name)
    if code is not None:
        return _python_entry(code, None)
    definition = definitions.definition_for_tenant(tenant=tenant, name=name)
    return _definition_entry(definition) if definition else None


def plugin_is_offered(*, tenant: Tenant, name: str) -> bool:
    """Whether `name` is a plugin this tenant can enable or disable: the built-ins, a Python plugin
    installed on the platform, one of the tenant's rows, or an operator's server granted to it."""
    return (
        name == plugin_code.BUILTIN_PLUGIN_NAME
        or name in plugin_code.python_plugins().plugins
        or plugin_get(tenant=tenant, name=name) is not None
        or definitions.definition_for_tenant(tenant=tenant, name=name) is not None
    )
