"""Writes on plugins: register an MCP server, enable or disable a plugin, discover its tools,
drop its connections, delete it. Skills and rules have their own modules (skills.py, rules.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
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
from apps.tools import mcp_client
from apps.tools import plugins as plugin_code
from apps.tools.models import Plugin
from apps.tools.registry import ToolError

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
# Variables that change what the server process loads or runs, not what it is configured with.
_FORBIDDEN_ENV = re.compile(r"^(LD_|DYLD_|PYTHON|NODE_OPTIONS$|PATH$|PERL5|RUBYOPT$|BASH_ENV$|ENV$)")
_CONFIG_KEYS = {"transport", "command", "args", "env", "cwd", "url", "headers", "timeout_seconds", "tool_side_effects"}


# --- config and secrets ------------------------------------------------------------------------------


def _string_map(value: Any, *, field: str, key_re: re.Pattern, what: str) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or len(value) > 64:
        raise ValidationError({field: [f"An object of at most 64 {what}s."]})
    for key, item in value.items():
        if not isinstance(key, str) or not key_re.match(key):
            raise ValidationError({field: [f"'{key}' is not a valid {what} name."]})
        if not isinstance(item, str) or len(item) > 4096 or "\n" in item or "\r" in item or "\x00" in item:
            raise ValidationError({field: [f"The value of '{key}' must be one line of text (at most 4096)."]})
        if what == "environment variable" and _FORBIDDEN_ENV.match(key):
            raise ValidationError({field: [f"'{key}' cannot be set for an MCP server."]})
    return dict(value)


def _stdio_config(config: dict[str, Any], *, trusted: bool) -> dict[str, Any]:
    command = config.get("command")
    if not isinstance(command, str) or not command.strip() or len(command) > 500 or "\x00" in command:
        raise ValidationError({"config.command": ["The executable to start, e.g. 'npx' or '/usr/bin/python3'."]})
    if not trusted and command not in settings.MCP_STDIO_ALLOWED_COMMANDS:
        raise ValidationError(
            {"config.command": ["This command is not in MCP_STDIO_ALLOWED_COMMANDS; ask an operator to add it."]}
        )
    args = config.get("args") or []
    if not isinstance(args, list) or len(args) > 64 or not all(isinstance(a, str) and len(a) <= 2000 for a in args):
        raise ValidationError({"config.args": ["A list of at most 64 strings."]})
    if any("\x00" in a for a in args):
        raise ValidationError({"config.args": ["NUL bytes are refused."]})
    cwd = config.get("cwd") or ""
    if not isinstance(cwd, str) or len(cwd) > 500 or "\x00" in cwd:
        raise ValidationError({"config.cwd": ["A folder path."]})
    env = _string_map(config.get("env"), field="config.env", key_re=_ENV_NAME_RE, what="environment variable")
    return {"transport": "stdio", "command": command, "args": args, "cwd": cwd, "env": env}


def _http_config(config: dict[str, Any]) -> dict[str, Any]:
    url = config.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url) or len(url) > 2000:
        raise ValidationError({"config.url": ["An http(s) URL, e.g. https://mcp.example.com/mcp."]})
    try:  # a clear 400 now; the connection checks again (DNS may change)
        mcp_client.outbound_policy().check_destination(url)
    except outbound.OutboundBlocked as exc:
        raise ValidationError({"config.url": [f"{exc} ({outbound.ALLOW_LIST_HINT})."]}) from exc
    headers = _string_map(config.get("headers"), field="config.headers", key_re=_HEADER_NAME_RE, what="header")
    return {"transport": "http", "url": url, "headers": headers}


def mcp_config_clean(config: Any, secrets: Any = None, *, trusted: bool = False) -> tuple[dict, dict]:
    """The validated (config, secrets) of an MCP plugin; ValidationError naming the field.

    `trusted` is for operators in the Django admin: tenants (the API) may only start stdio
    commands listed in MCP_STDIO_ALLOWED_COMMANDS, since the server runs on the platform."""
    if not isinstance(config, dict):
        raise ValidationError({"config": ["An object."]})
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise ValidationError({"config": [f"Unknown keys: {', '.join(sorted(unknown))}."]})
    transport = config.get("transport") or ("http" if config.get("url") else "stdio")
    if transport == "stdio":
        clean = _stdio_config(config, trusted=trusted)
    elif transport == "http":
        clean = _http_config(config)
    else:
        raise ValidationError({"config.transport": ["stdio or http."]})
    timeout = config.get("timeout_seconds")
    if timeout is not None:
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 1 <= timeout <= 600:
            raise ValidationError({"config.timeout_seconds": ["A number of seconds between 1 and 600."]})
        clean["timeout_seconds"] = timeout
    overrides = config.get("tool_side_effects") or {}
    if not isinstance(overrides, dict) or any(v not in plugin_code.SIDE_EFFECTS for v in overrides.values()):
        raise ValidationError({"config.tool_side_effects": ["An object of tool name -> read | write | external."]})
    if overrides:
        clean["tool_side_effects"] = overrides

    secrets = secrets or {}
    if not isinstance(secrets, dict) or set(secrets) - {"env", "headers"}:
        raise ValidationError({"secrets": ['{"env": {...}, "headers": {...}}']})
    clean_secrets = {
        "env": _string_map(secrets.get("env"), field="secrets.env", key_re=_ENV_NAME_RE, what="environment variable"),
        "headers": _string_map(secrets.get("headers"), field="secrets.headers", key_re=_HEADER_NAME_RE, what="header"),
    }
    return clean, {key: value for key, value in clean_secrets.items() if value}


def plugin_secrets(plugin: Plugin) -> dict[str, dict[str, str]]:
    if not plugin.secrets_encrypted:
        return {}
    return json.loads(decrypt_secret(plugin.secrets_encrypted))


def secret_names(plugin: Plugin) -> dict[str, list[str]]:
    """Which secrets are stored (names only), for responses and the admin."""
    try:
        secrets = plugin_secrets(plugin)
    except ValueError:
        return {"env": [], "headers": [], "error": ["cannot be decrypted with the configured key"]}
    return {kind: sorted(values) for kind, values in secrets.items()}


# --- plugins ---------------------------------------------------------------------------------------


def _audit(tenant: Tenant, actor: Actor, action: str, plugin_name: str, data: dict | None = None) -> None:
    audit_record(tenant=tenant, actor=actor, action=action, target_type="plugin", target_id=plugin_name, data=data)


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
    trusted: bool = False,
) -> Plugin:
    """Register an MCP server for the tenant and, unless told not to, ask it for its tools (the
    plugin is created either way; a failed discovery leaves it in status error)."""
    if name == plugin_code.BUILTIN_PLUGIN_NAME or name in plugin_code.python_plugins().plugins:
        raise Conflict(f"'{name}' is the name of a plugin installed on the platform.")
    config, secrets = mcp_config_clean(config, secrets, trusted=trusted)
    try:
        with transaction.atomic():
            plugin = Plugin.objects.create(
                tenant=tenant,
                name=name,
                kind=Plugin.Kind.MCP,
                description=description,
                config=config,
                secrets_encrypted=encrypt_secret(json.dumps(secrets)) if secrets else "",
                enabled=enabled,
            )
            _audit(tenant, actor, "plugin.created", name, {"kind": "mcp", "transport": config["transport"]})
    except IntegrityError as exc:
        raise Conflict(f"A plugin named '{name}' already exists.") from exc
    if discover:
        plugin = plugin_discover(tenant=tenant, actor=actor, plugin=plugin)
    return plugin


def plugin_set_config(
    *, tenant: Tenant, actor: Actor, plugin: Plugin, config: dict, secrets: dict | None, trusted: bool = False
) -> Plugin:
    """Replace an MCP plugin's config (and its secrets when given); connections are renewed."""
    config, cleaned_secrets = mcp_config_clean(config, secrets, trusted=trusted)
    fields = {"config": config, "generation": F("generation") + 1, "updated_at": timezone.now()}
    if secrets is not None:
        fields["secrets_encrypted"] = encrypt_secret(json.dumps(cleaned_secrets)) if cleaned_secrets else ""
    with transaction.atomic():
        Plugin.objects.filter(pk=plugin.pk, tenant=tenant).update(**fields)
        _audit(tenant, actor, "plugin.updated", plugin.name, {"secrets_changed": secrets is not None})
    plugin.refresh_from_db()
    return plugin


def plugin_toggle(*, tenant: Tenant, actor: Actor, name: str, enabled: bool | None = None) -> Plugin:
    """Enable or disable one of the tenant's plugins (`enabled` None flips it). A Python plugin
    installed on the platform gets its row on first toggle; built-ins cannot be switched off."""
    if name == plugin_code.BUILTIN_PLUGIN_NAME:
        raise Conflict("Built-in tools are always available; remove them from an agent's enabled_tools instead.")
    with transaction.atomic():
        plugin = Plugin.objects.select_for_update().filter(tenant=tenant, name=name).first()
        if plugin is None:
            code = plugin_code.python_plugins().plugins.get(name)
            if code is None:
                raise NotFound
            plugin = Plugin.objects.create(
                tenant=tenant,
                name=name,
                kind=Plugin.Kind.PYTHON,
                description=code.description,
                enabled=False,
                status=Plugin.Status.READY,
                discovered_tools=plugin_code.describe_tools(plugin_code.python_plugin_tools(code)),
                discovered_at=timezone.now(),
            )
        plugin.enabled = (not plugin.enabled) if enabled is None else enabled
        plugin.generation += 1  # a disabled plugin's connections are dropped by every process
        plugin.save(update_fields=["enabled", "generation", "updated_at"])
        _audit(tenant, actor, "plugin.enabled" if plugin.enabled else "plugin.disabled", name)
    if not plugin.enabled:
        _disconnect_here(plugin)
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
        Plugin.objects.filter(pk=plugin.pk).update(generation=F("generation") + 1)
        plugin.refresh_from_db(fields=["generation"])
        try:
            from apps.tools.mcp_client import manager

            listed = manager.list_tools(plugin_code.mcp_spec(plugin))
        except (ToolError, ValueError) as exc:
            tools, status, message = plugin.discovered_tools, Plugin.Status.ERROR, str(exc)[:1000]
        else:
            tools, warnings = plugin_code.mcp_discovered_tools(plugin.name, listed, plugin.config or {})
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
