"""Writes on plugins: register an HTTP MCP server, change it, enable or disable a plugin (a Python
plugin installed on the platform, or a stdio MCP server an operator defined), discover its tools,
drop its connections, delete it. Skills and rules have their own modules (skills.py, rules.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError

from apps.agents.crypto import decrypt_secret, encrypt_secret
from apps.core import outbound
from apps.core.errors import Conflict
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor
from apps.tenancy.services import audit_record
from apps.tools import definitions, mcp_client
from apps.tools import plugins as plugin_code
from apps.tools.models import Plugin, PluginDefinition
from apps.tools.registry import ToolError

_CONFIG_KEYS = {"transport", "url", "headers", "timeout_seconds", "tool_side_effects"}
_STDIO_KEYS = {"command", "args", "env", "cwd"}
STDIO_REFUSED = (
    "Tenants register HTTP MCP servers only (config.url): a stdio server is a process on the platform's "
    "host, so an operator registers it in the admin and grants it to tenants; enable a granted one with "
    "PUT /api/plugins/{name}/toggle (GET /api/plugins lists them)."
)


# --- config and secrets ------------------------------------------------------------------------------


def _http_config(config: dict[str, Any]) -> dict[str, Any]:
    url = config.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url) or len(url) > 2000:
        raise ValidationError({"config.url": ["An http(s) URL, e.g. https://mcp.example.com/mcp."]})
    try:  # a clear 400 now; the connection checks again (DNS may change)
        mcp_client.outbound_policy().check_destination(url)
    except outbound.OutboundBlocked as exc:
        raise ValidationError({"config.url": [f"{exc} ({outbound.ALLOW_LIST_HINT})."]}) from exc
    return {"transport": "http", "url": url}


def mcp_config_clean(config: Any, secrets: Any = None) -> tuple[dict, dict[str, str] | None]:
    """The validated (config, headers) of a tenant's HTTP MCP plugin; ValidationError naming the field.

    Headers (in `config.headers` or the older `secrets.headers`) are split off: they are stored
    encrypted and never shown again. `headers` is None when the request named none (PATCH keeps
    the stored ones). A stdio config is refused: only operators say what runs on the host."""
    if not isinstance(config, dict):
        raise ValidationError({"config": ["An object."]})
    if config.get("transport") == "stdio" or set(config) & _STDIO_KEYS:
        raise ValidationError({"config.transport": [STDIO_REFUSED]})
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise ValidationError({"config": [f"Unknown keys: {', '.join(sorted(unknown))}."]})
    if config.get("transport") not in (None, "http"):
        raise ValidationError({"config.transport": ["http (tenants register HTTP MCP servers only)."]})
    clean = _http_config(config)
    timeout = definitions.timeout_clean(config.get("timeout_seconds"), field="config.timeout_seconds")
    if timeout is not None:
        clean["timeout_seconds"] = timeout
    overrides = definitions.side_effects_clean(config.get("tool_side_effects"), field="config.tool_side_effects")
    if overrides:
        clean["tool_side_effects"] = overrides

    secrets = secrets or {}
    if not isinstance(secrets, dict) or set(secrets) - {"headers"}:
        raise ValidationError({"secrets": ['{"headers": {...}} (environment variables are for stdio servers).']})
    if "headers" not in config and "headers" not in secrets:
        return clean, None
    headers = {
        **definitions.string_map(
            config.get("headers"), field="config.headers", key_re=definitions.HEADER_NAME_RE, what="header"
        ),
        **definitions.string_map(
            secrets.get("headers"), field="secrets.headers", key_re=definitions.HEADER_NAME_RE, what="header"
        ),
    }
    return clean, headers


def _headers_token(headers: dict[str, str]) -> str:
    return encrypt_secret(json.dumps({"headers": headers})) if headers else ""


def plugin_secrets(plugin: Plugin) -> dict[str, dict[str, str]]:
    if not plugin.secrets_encrypted:
        return {}
    return json.loads(decrypt_secret(plugin.secrets_encrypted))


def header_hints(plugin: Plugin) -> list[dict[str, str]]:
    """The stored headers as responses show them: each name and a hint, never a value."""
    try:
        headers = plugin_secrets(plugin).get("headers", {})
    except ValueError:
        return [{"name": "?", "hint": "cannot be decrypted with the configured key"}]
    return [{"name": name, "hint": _hint(value)} for name, value in sorted(headers.items())]


def _hint(value: str) -> str:
    # Like mask_secret's tail, without its vendor prefix: a header's first word can be anything
    # (a team name, a user name), so only the last characters are shown, at most a quarter.
    tail = min(4, len(value) // 4)
    return f"…{value[-tail:]}" if tail else "…"


# --- plugins ---------------------------------------------------------------------------------------


def _audit(tenant: Tenant, actor: Actor, action: str, plugin_name: str, data: dict | None = None) -> None:
    audit_record(tenant=tenant, actor=actor, action=action, target_type="plugin", target_id=plugin_name, data=data)


def _platform_name(name: str) -> bool:
    """Names tenants cannot take for their own MCP servers: they belong to the platform's plugins
    and the operators' definitions (one tenant enabling `files` must not meet another's `files`)."""
    return (
        name == plugin_code.BUILTIN_PLUGIN_NAME
        or name in plugin_code.python_plugins().plugins
        or PluginDefinition.objects.filter(name=name).exists()
    )


def plugin_create(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str,
    config: dict[str, Any],
    secrets: dict[str, Any] | None = None,
    description: str = "",
    enabled: bool = True,
    discover: bool = True,
) -> Plugin:
    """Register an HTTP MCP server for the tenant and, unless told not to, ask it for its tools
    (the plugin is created either way; a failed discovery leaves it in status error)."""
    config, headers = mcp_config_clean(config, secrets)
    if _platform_name(name):
        raise Conflict(f"'{name}' is the name of a plugin installed or defined on the platform.")
    try:
        with transaction.atomic():
            plugin = Plugin.objects.create(
                tenant=tenant,
                name=name,
                kind=Plugin.Kind.MCP,
                description=description,
                config=config,
                secrets_encrypted=_headers_token(headers or {}),
                enabled=enabled,
            )
            _audit(tenant, actor, "plugin.created", name, {"kind": "mcp", "transport": "http"})
    except IntegrityError as exc:
        raise Conflict(f"A plugin named '{name}' already exists.") from exc
    if discover:
        plugin = plugin_discover(tenant=tenant, actor=actor, plugin=plugin)
    return plugin


def plugin_update(
    *,
    tenant: Tenant,
    actor: Actor,
    plugin: Plugin,
    config: dict | None = None,
    secrets: dict | None = None,
    description: str | None = None,
) -> Plugin:
    """Change a tenant's HTTP MCP server: `config` replaces the stored one (headers named in it,
    or in `secrets.headers`, replace the stored headers; none named keeps them). Connections are
    renewed. Plugins the platform or an operator provides cannot be changed here."""
    if plugin.kind != Plugin.Kind.MCP or plugin.definition_id or (plugin.config or {}).get("transport") != "http":
        raise Conflict(
            f"The plugin '{plugin.name}' is provided by the platform or an operator: it can be enabled or "
            "disabled (PUT /api/plugins/{name}/toggle), not changed."
        )
    fields: dict[str, Any] = {"updated_at": timezone.now()}
    changed = []
    if config is not None or secrets is not None:
        clean, headers = mcp_config_clean(config if config is not None else plugin.config, secrets)
        fields.update(config=clean, generation=F("generation") + 1)
        changed.append("config")
        if headers is not None:
            fields["secrets_encrypted"] = _headers_token(headers)
            changed.append("headers")
    if description is not None:
        fields["description"] = description
        changed.append("description")
    with transaction.atomic():
        Plugin.objects.filter(pk=plugin.pk, tenant=tenant).update(**fields)
        _audit(tenant, actor, "plugin.updated", plugin.name, {"changed": changed})
    plugin.refresh_from_db()
    if "config" in changed:
        _disconnect_here(plugin)
    return plugin


def _enablement_row(tenant: Tenant, name: str) -> Plugin:
    """The first row for a plugin the platform offers the tenant: a Python plugin installed on the
    platform, or an operator's stdio definition granted to the tenant; NotFound otherwise. Tenant
    input is only ever looked up by name here, never imported or run."""
    code = plugin_code.python_plugins().plugins.get(name)
    if code is not None:
        return Plugin.objects.create(
            tenant=tenant,
            name=name,
            kind=Plugin.Kind.PYTHON,
            description=code.description,
            enabled=False,
            status=Plugin.Status.READY,
            discovered_tools=plugin_code.describe_tools(plugin_code.python_plugin_tools(code)),
            discovered_at=timezone.now(),
        )
    definition = definitions.definition_for_tenant(tenant=tenant, name=name)
    if definition is None:
        raise NotFound
    return Plugin.objects.create(
        tenant=tenant,
        name=name,
        kind=Plugin.Kind.MCP,
        description=definition.description,
        config={"transport": "stdio"},
        definition=definition,
        enabled=False,
    )


def _check_may_enable(tenant: Tenant, plugin: Plugin) -> None:
    if plugin.kind != Plugin.Kind.MCP:
        return
    if plugin.definition_id is None and (plugin.config or {}).get("transport") != "http":
        # A stdio registration from before operators owned them (see migration 0003): what it
        # would start was chosen by a tenant, so it stays off.
        raise Conflict(STDIO_REFUSED.replace("{name}", plugin.name))
    if plugin.definition_id and not definitions.definition_granted(plugin.definition, tenant.pk):
        raise Conflict(f"The operator no longer grants '{plugin.name}' to this tenant.")


def plugin_toggle(*, tenant: Tenant, actor: Actor, name: str, enabled: bool | None = None) -> Plugin:
    """Enable or disable one of the tenant's plugins (`enabled` None flips it). A Python plugin
    installed on the platform, or an operator's stdio definition granted to the tenant, gets its
    row on first toggle (and a definition's tools are discovered on first enable); built-ins
    cannot be switched off."""
    if name == plugin_code.BUILTIN_PLUGIN_NAME:
        raise Conflict("Built-in tools are always available; remove them from an agent's enabled_tools instead.")
    with transaction.atomic():
        plugin = Plugin.objects.select_for_update().filter(tenant=tenant, name=name).first()
        if plugin is None:
            plugin = _enablement_row(tenant, name)
        plugin.enabled = (not plugin.enabled) if enabled is None else enabled
        if plugin.enabled:
            _check_may_enable(tenant, plugin)
        plugin.generation += 1  # a disabled plugin's connections are dropped by every process
        plugin.save(update_fields=["enabled", "generation", "updated_at"])
        _audit(tenant, actor, "plugin.enabled" if plugin.enabled else "plugin.disabled", name)
    if not plugin.enabled:
        _disconnect_here(plugin)
    elif plugin.definition_id and plugin.status == Plugin.Status.NEW:
        plugin = plugin_discover(tenant=tenant, actor=actor, plugin=plugin)
    return plugin


def plugin_discover(*, tenant: Tenant, actor: Actor, plugin: Plugin) -> Plugin:
    """Ask the plugin what tools it has now (an MCP server on a fresh connection; a Python plugin
    from the loaded code) and record the answer and the status."""
    now = timezone.now()
    if plugin.kind == Plugin.Kind.PYTHON:
        code = plugin_code.python_plugins().plugins.get(plugin.name)
        tools = plugin_code.describe_tools(plugin_code.python_plugin_tools(code)) if code else []
        status = Plugin.Status.READY if code else Plugin.Status.UNAVAILABLE
        message = "" if code else "The plugin's code is not installed in this process."
    elif plugin.kind == Plugin.Kind.MCP:
        _check_may_enable(tenant, plugin)  # a stdio row of no (or no longer granted) definition never starts
        Plugin.objects.filter(pk=plugin.pk).update(generation=F("generation") + 1)
        plugin.refresh_from_db(fields=["generation"])
        try:
            from apps.tools.mcp_client import manager

            listed = manager.list_tools(plugin_code.mcp_spec(plugin))
        except (ToolError, ValueError) as exc:
            tools, status, message = plugin.discovered_tools, Plugin.Status.ERROR, str(exc)[:1000]
        else:
            tools, warnings = plugin_code.mcp_discovered_tools(
                plugin.name, listed, {"tool_side_effects": plugin_code.side_effect_overrides(plugin)}
            )
            status, message = Plugin.Status.READY, " ".join(warnings)[:1000]
    else:
        raise Conflict("Built-in tools need no discovery.")
    with transaction.atomic():
        Plugin.objects.filter(pk=plugin.pk, tenant=tenant).update(
            discovered_tools=tools, status=status, status_message=message, discovered_at=now, updated_at=now
        )
        _audit(tenant, actor, "plugin.discovered", plugin.name, {"status": status, "tools": len(tools)})
    plugin.refresh_from_db()
    return plugin


def plugin_disconnect(*, tenant: Tenant, actor: Actor, plugin: Plugin) -> bool:
    """Drop the plugin's MCP connections: this process's now, every other process's when it next
    uses it (the generation moves on). True when this process had one open."""
    with transaction.atomic():
        Plugin.objects.filter(pk=plugin.pk, tenant=tenant).update(generation=F("generation") + 1)
        _audit(tenant, actor, "plugin.disconnected", plugin.name)
    plugin.refresh_from_db(fields=["generation"])
    return _disconnect_here(plugin)


def plugin_delete(*, tenant: Tenant, actor: Actor, plugin: Plugin) -> None:
    with transaction.atomic():
        Plugin.objects.filter(pk=plugin.pk, tenant=tenant).delete()
        _audit(tenant, actor, "plugin.deleted", plugin.name, {"kind": plugin.kind})
    _disconnect_here(plugin)


def _disconnect_here(plugin: Plugin) -> bool:
    if plugin.kind != Plugin.Kind.MCP:
        return False
    from apps.tools.mcp_client import manager

    return manager.disconnect(str(plugin.pk))


# --- the operators' definitions ---------------------------------------------------------------------


def plugin_definition_save(
    *, actor: Actor, definition: PluginDefinition, secret_env: dict[str, str] | None = None
) -> PluginDefinition:
    """Save an operator's stdio definition (its fields already validated with
    definitions.definition_clean); `secret_env` replaces the stored secret variables when given.
    Every tenant's connection to it is renewed: a process started with the old argv goes."""
    with transaction.atomic():
        if secret_env is not None:
            definition.secrets_encrypted = encrypt_secret(json.dumps({"env": secret_env})) if secret_env else ""
        definition.save()
        enablements = list(Plugin.objects.filter(definition=definition))
        Plugin.objects.filter(definition=definition).update(generation=F("generation") + 1)
        for plugin in enablements:
            _audit(plugin.tenant, actor, "plugin.updated", plugin.name, {"definition_changed": True})
    for plugin in enablements:
        _disconnect_here(plugin)
    return definition
