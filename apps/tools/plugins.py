"""Plugins: where tools beyond the built-ins come from, and the tools each tenant sees.

- **Python plugins** are code an operator installed on the platform: the modules of the
  `plugins/` package (PLUGINS_PACKAGE) and the objects of the `agentplatform.plugins` entry
  point group. Each exposes a `PythonPlugin`; tenants enable the ones they want (a Plugin row,
  kind python).
- **MCP servers**: a tenant registers HTTP ones; stdio ones are operators' definitions
  (PluginDefinition) that a tenant enables (a Plugin row, kind mcp, either way). Their tools are
  what the server listed at the last discovery, and each call goes to the server through
  `apps.tools.mcp_client`.

Either way a plugin tool is named `<plugin>__<tool>`, and only an *enabled* plugin of the
agent's own tenant contributes tools (`plugin_tools_for_tenant`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import json
import logging
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from django.conf import settings
from django.db.models import Q

from apps.tools.models import PLUGIN_NAME_PATTERN, Plugin
from apps.tools.registry import (
    PLUGIN_SEPARATOR,
    TOOL_NAME_RE,
    SideEffect,
    Tool,
    ToolContext,
    ToolError,
    builtin_registry,
    qualified_name,
)

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "agentplatform.plugins"
BUILTIN_PLUGIN_NAME = "builtin"
MAX_TOOLS_PER_PLUGIN = 128
DESCRIPTION_MAX_CHARS = 1024
SCHEMA_MAX_CHARS = 20000
WILDCARD = "*"
_NAME_RE = re.compile(PLUGIN_NAME_PATTERN)
_INVALID_TOOL_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_PACKAGE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
SIDE_EFFECTS = (SideEffect.READ, SideEffect.WRITE, SideEffect.EXTERNAL)


@dataclass(frozen=True)
class PythonPlugin:
    """What a Python plugin module exposes as `plugin` (or an entry point loads).

    `tools` carry their short names (`word_count`); the registry qualifies them as
    `<plugin>__word_count`. Handlers receive the ToolContext (tenant, agent, user) from the server.
    """

    name: str
    description: str = ""
    version: str = ""
    tools: tuple[Tool, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PythonPluginIndex:
    plugins: dict[str, PythonPlugin]
    broken: dict[str, str]  # module or entry point -> why it was not loaded


# --- Python plugins --------------------------------------------------------------------------------


def _check_python_plugin(candidate: Any, origin: str) -> PythonPlugin:
    if callable(candidate) and not isinstance(candidate, PythonPlugin):
        candidate = candidate()
    if not isinstance(candidate, PythonPlugin):
        raise TypeError(f"{origin} does not provide a PythonPlugin")
    if not _NAME_RE.match(candidate.name) or candidate.name == BUILTIN_PLUGIN_NAME:
        raise ValueError(f"{origin}: plugin name '{candidate.name}' must match {PLUGIN_NAME_PATTERN}")
    names = [tool.name for tool in candidate.tools]
    if len(names) != len(set(names)):
        raise ValueError(f"{origin}: two tools share a name")
    for tool in candidate.tools:
        if not TOOL_NAME_RE.match(qualified_name(candidate.name, tool.name)):
            raise ValueError(f"{origin}: tool name '{tool.name}' is not valid once qualified")
    return candidate


def _package_candidates(package_name: str) -> list[tuple[str, Any]]:
    """The modules of the operator's plugins package, found on disk under it. Only this and the
    entry points ever import plugin code: names from tenants are looked up in the index this
    builds, never imported (a tenant cannot make the platform load a module)."""
    found: list[tuple[str, Any]] = []
    if not _PACKAGE_RE.match(package_name):
        logger.warning("PLUGINS_PACKAGE %r is not a dotted module name; no local plugins loaded.", package_name)
        return found
    try:
        package = importlib.import_module(package_name)
    except ImportError:
        return found
    for module_info in pkgutil.iter_modules(getattr(package, "__path__", []), prefix=f"{package_name}."):
        if module_info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        found.append((module_info.name, lambda name=module_info.name: importlib.import_module(name).plugin))
    return found


@functools.lru_cache(maxsize=1)
def python_plugins() -> PythonPluginIndex:
    """Every Python plugin this process can load, by name; loaded once per process.

    A plugin that fails to import or is malformed is logged and listed in `broken`, never
    taking the others (or the process) down with it."""
    candidates = _package_candidates(settings.PLUGINS_PACKAGE) if settings.PLUGINS_PACKAGE else []
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        candidates.append((f"entry point {entry_point.name}", entry_point.load))
    plugins: dict[str, PythonPlugin] = {}
    broken: dict[str, str] = {}
    for origin, load in candidates:
        try:
            plugin = _check_python_plugin(load(), origin)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the others
            logger.warning("Python plugin %s not loaded: %s", origin, exc)
            broken[origin] = f"{type(exc).__name__}: {exc}"[:500]
            continue
        if plugin.name in plugins:
            broken[origin] = f"a plugin named '{plugin.name}' is already loaded"
            continue
        plugins[plugin.name] = plugin
    return PythonPluginIndex(plugins=plugins, broken=broken)


def python_plugin_tools(plugin: PythonPlugin) -> list[Tool]:
    return [
        dataclasses.replace(tool, name=qualified_name(plugin.name, tool.name), source=plugin.name)
        for tool in plugin.tools
    ]


def describe_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    """The `discovered_tools` form of Tool objects."""
    return [
        {
            "name": tool.name,
            "remote_name": tool.name.split(PLUGIN_SEPARATOR, 1)[-1],
            "description": tool.description,
            "parameters": tool.parameters,
            "side_effect": tool.side_effect,
            "annotations": {},
        }
        for tool in tools
    ]


# --- MCP tools ---------------------------------------------------------------------------------------


def mcp_tool_name(plugin: str, remote: str, taken: set[str]) -> str:
    """`<plugin>__<remote>` made valid for model APIs: other characters become `_`, and a name
    too long (or clashing after that) is cut and given a short hash of the remote name."""
    room = 64 - len(plugin) - len(PLUGIN_SEPARATOR)
    short = _INVALID_TOOL_CHARS.sub("_", remote) or "tool"
    if len(short) > room or qualified_name(plugin, short) in taken:
        digest = hashlib.sha256(remote.encode()).hexdigest()[:6]
        short = f"{short[: room - 7]}_{digest}"
    return qualified_name(plugin, short)


def _clean_schema(schema: Any) -> dict[str, Any] | None:
    """A usable JSON schema for the arguments, or None when the server's is unusable."""
    if not isinstance(schema, dict):
        return None
    schema = {**schema, "type": "object"} if "type" not in schema else schema
    if schema.get("type") != "object" or len(json.dumps(schema, default=str)) > SCHEMA_MAX_CHARS:
        return None
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)
    except jsonschema.SchemaError:
        return None
    return schema


def mcp_discovered_tools(plugin_name: str, listed: list[dict[str, Any]], config: dict[str, Any]) -> tuple[list, list]:
    """The server's listing as `discovered_tools` entries, and warnings about tools left out."""
    overrides = config.get("tool_side_effects") or {}
    entries, warnings, taken = [], [], set()
    for item in listed:
        remote = str(item.get("name") or "")
        schema = _clean_schema(item.get("input_schema"))
        if not remote or schema is None:
            warnings.append(f"Tool '{remote[:64]}' left out: its input schema is not a usable JSON schema object.")
            continue
        if len(entries) >= MAX_TOOLS_PER_PLUGIN:
            warnings.append(f"Only the first {MAX_TOOLS_PER_PLUGIN} tools are kept.")
            break
        name = mcp_tool_name(plugin_name, remote, taken)
        taken.add(name)
        entries.append(
            {
                "name": name,
                "remote_name": remote,
                "description": str(item.get("description") or "")[:DESCRIPTION_MAX_CHARS],
                "parameters": schema,
                # Annotations are the server's hints; nothing trusts them. MCP tools count as
                # external unless an admin says otherwise in config.tool_side_effects.
                "side_effect": overrides.get(remote, SideEffect.EXTERNAL),
                "annotations": item.get("annotations") or {},
            }
        )
    return entries, warnings


def side_effect_overrides(plugin: Plugin) -> dict[str, str]:
    """Remote tool -> side effect as set by whoever registered the server (operator or tenant)."""
    if plugin.definition_id:
        return plugin.definition.tool_side_effects or {}
    return (plugin.config or {}).get("tool_side_effects") or {}


def mcp_spec(plugin: Plugin):
    """How to reach the plugin's server, secrets decrypted (build it just before use).

    A stdio server's argv, environment and folder come only from the operator's definition the
    tenant enabled; a tenant's row never names a command. Callers check the grant still holds
    (plugin_tools_for_tenant in its query, plugin_discover before connecting): this runs on
    every call, from any thread, and makes no query of its own once `definition` is loaded."""
    from apps.tools import definitions
    from apps.tools.mcp_client import McpServerSpec
    from apps.tools.services import STDIO_REFUSED, plugin_secrets

    config = plugin.config or {}
    common = {
        "key": str(plugin.pk),
        "tenant_id": str(plugin.tenant_id),
        "plugin_name": plugin.name,
        "generation": plugin.generation,
    }
    if plugin.definition_id:
        definition = plugin.definition
        env = {**(definition.env or {}), **definitions.definition_secret_env(definition)}
        return McpServerSpec(
            **common,
            transport="stdio",
            command=definition.command,
            args=tuple(definition.args or ()),
            env=tuple(sorted(env.items())),
            env_passthrough=tuple(definition.env_passthrough or ()),
            cwd=definition.cwd or "",
            timeout_seconds=definition.timeout_seconds,
        )
    if config.get("transport") != "http":
        raise ToolError(STDIO_REFUSED.replace("{name}", plugin.name))
    return McpServerSpec(
        **common,
        transport="http",
        url=config.get("url") or "",
        headers=tuple(sorted(plugin_secrets(plugin).get("headers", {}).items())),
        timeout_seconds=config.get("timeout_seconds"),
    )


def _mcp_handler(plugin: Plugin, remote_name: str):
    def handler(context: ToolContext, arguments: dict[str, Any]) -> Any:
        from apps.tools.mcp_client import manager

        # Defence in depth: the tool list is per tenant, so this only fails on a wiring bug.
        if context.tenant is None or context.tenant.pk != plugin.tenant_id:
            raise ToolError("This tool belongs to another tenant.")
        result = manager.call_tool(mcp_spec(plugin), remote_name, arguments)
        if result["is_error"]:
            raise ToolError(result["text"][:500] or f"The MCP tool '{remote_name}' reported an error.")
        return result["structured"] if result["structured"] is not None and not result["text"] else result["text"]

    return handler


def mcp_plugin_tools(plugin: Plugin) -> list[Tool]:
    overrides = side_effect_overrides(plugin)
    tools = []
    for entry in plugin.discovered_tools or []:
        try:
            side_effect = overrides.get(entry["remote_name"], entry.get("side_effect") or SideEffect.EXTERNAL)
            tools.append(
                Tool(
                    name=entry["name"],
                    description=entry.get("description") or "",
                    parameters=entry.get("parameters") or {"type": "object"},
                    handler=_mcp_handler(plugin, entry["remote_name"]),
                    side_effect=side_effect if side_effect in SIDE_EFFECTS else SideEffect.EXTERNAL,
                    source=plugin.name,
                )
            )
        except (KeyError, TypeError):
            logger.warning("Plugin %s has a malformed discovered tool; skipped.", plugin.pk)
    return tools


# --- the tenant's view -------------------------------------------------------------------------------


def plugin_tools(plugin: Plugin) -> list[Tool]:
    """The tools a Plugin row contributes now (enabled or not; callers check)."""
    if plugin.kind == Plugin.Kind.PYTHON:
        code = python_plugins().plugins.get(plugin.name)
        return python_plugin_tools(code) if code else []
    if plugin.kind == Plugin.Kind.MCP:
        return mcp_plugin_tools(plugin)
    return []


def plugin_tools_for_tenant(*, tenant_id, names: list[str]) -> list[Tool]:
    """The tools among `names` (qualified, or `<plugin>__*`) of the tenant's enabled plugins."""
    wanted = {name for name in names if PLUGIN_SEPARATOR in name}
    plugin_names = {name.split(PLUGIN_SEPARATOR, 1)[0] for name in wanted}
    if not plugin_names:
        return []
    rows = (
        Plugin.objects.filter(tenant_id=tenant_id, enabled=True, name__in=plugin_names)
        .exclude(kind=Plugin.Kind.BUILTIN)
        # An operator's definition counts only while it is still granted to the tenant.
        .filter(Q(definition=None) | Q(definition__available_to_all=True) | Q(definition__granted_tenants=tenant_id))
        .select_related("definition")
        .distinct()
    )
    tools = []
    for row in rows:
        everything = qualified_name(row.name, WILDCARD) in wanted
        tools += [tool for tool in plugin_tools(row) if everything or tool.name in wanted]
    return sorted(tools, key=lambda tool: tool.name)


def builtin_tools() -> list[Tool]:
    return builtin_registry.tools(builtin_registry.names())
