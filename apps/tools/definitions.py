"""The operators' catalog of stdio MCP servers (PluginDefinition): validation, grants, secrets.

A stdio MCP server is a process on the platform's host, so only operators say what runs: the
full argv, the environment and the folder, in the Django admin. Tenants see the definitions they
were granted (or all, with `available_to_all`) and enable them (services.plugin_toggle); they
never choose or change a command, an argument, a variable or a folder.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.db.models import Q
from rest_framework.exceptions import ValidationError

from apps.agents.crypto import decrypt_secret
from apps.tenancy.models import Tenant
from apps.tools.models import PluginDefinition

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
SIDE_EFFECTS = ("read", "write", "external")


def string_map(value: Any, *, field: str, key_re: re.Pattern, what: str) -> dict[str, str]:
    """A validated {name: one-line value} object (environment variables or headers)."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or len(value) > 64:
        raise ValidationError({field: [f"An object of at most 64 {what}s."]})
    for key, item in value.items():
        if not isinstance(key, str) or not key_re.match(key):
            raise ValidationError({field: [f"'{key}' is not a valid {what} name."]})
        if not isinstance(item, str) or len(item) > 4096 or "\n" in item or "\r" in item or "\x00" in item:
            raise ValidationError({field: [f"The value of '{key}' must be one line of text (at most 4096)."]})
    return dict(value)


def side_effects_clean(value: Any, *, field: str) -> dict[str, str]:
    value = value or {}
    if not isinstance(value, dict) or any(v not in SIDE_EFFECTS for v in value.values()):
        raise ValidationError({field: ["An object of tool name -> read | write | external."]})
    return dict(value)


def timeout_clean(value: Any, *, field: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 1 <= value <= 600:
        raise ValidationError({field: ["A number of seconds between 1 and 600."]})
    return value


def definition_clean(
    *, command: Any, args: Any, env: Any, env_passthrough: Any, cwd: Any, secret_env: Any = None
) -> dict[str, Any]:
    """The validated launch fields of a definition; ValidationError naming the field.

    Operators are trusted with what runs, so variables such as PYTHONPATH are theirs to set;
    the checks keep the argv well formed (no NUL bytes, bounded sizes)."""
    if not isinstance(command, str) or not command.strip() or len(command) > 500 or "\x00" in command:
        raise ValidationError({"command": ["The executable to start, e.g. '/usr/bin/python3'."]})
    args = args or []
    if not isinstance(args, list) or len(args) > 64 or not all(isinstance(a, str) and len(a) <= 2000 for a in args):
        raise ValidationError({"args": ["A JSON list of at most 64 strings."]})
    if any("\x00" in a for a in args):
        raise ValidationError({"args": ["NUL bytes are refused."]})
    cwd = cwd or ""
    if not isinstance(cwd, str) or len(cwd) > 500 or "\x00" in cwd:
        raise ValidationError({"cwd": ["A folder path."]})
    passthrough = env_passthrough or []
    if not isinstance(passthrough, list) or not all(isinstance(n, str) and ENV_NAME_RE.match(n) for n in passthrough):
        raise ValidationError({"env_passthrough": ["A JSON list of environment variable names."]})
    return {
        "command": command,
        "args": args,
        "cwd": cwd,
        "env": string_map(env, field="env", key_re=ENV_NAME_RE, what="environment variable"),
        "env_passthrough": sorted(set(passthrough)),
        "secret_env": string_map(secret_env, field="secret_env", key_re=ENV_NAME_RE, what="environment variable"),
    }


def definition_secret_env(definition: PluginDefinition) -> dict[str, str]:
    if not definition.secrets_encrypted:
        return {}
    return json.loads(decrypt_secret(definition.secrets_encrypted)).get("env", {})


def definitions_for_tenant(*, tenant: Tenant | None = None, tenant_id=None):
    """The definitions a tenant may enable: those for everyone and those granted to it."""
    tenant_id = tenant.pk if tenant is not None else tenant_id
    return PluginDefinition.objects.filter(Q(available_to_all=True) | Q(granted_tenants__pk=tenant_id)).distinct()


def definition_for_tenant(*, tenant: Tenant, name: str) -> PluginDefinition | None:
    return definitions_for_tenant(tenant=tenant).filter(name=name).first()


def definition_granted(definition: PluginDefinition, tenant_id) -> bool:
    """Still granted (an operator may withdraw a grant after the tenant enabled it)."""
    return definition.available_to_all or definition.granted_tenants.filter(pk=tenant_id).exists()
