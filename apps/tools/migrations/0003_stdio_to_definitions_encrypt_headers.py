"""Data: tenants' stdio MCP registrations become operator definitions or are switched off, and
HTTP MCP headers move out of `config` into the encrypted secrets.

- A tenant's stdio row whose command was in MCP_STDIO_ALLOWED_COMMANDS (the old allow-list,
  read from the environment as the setting was; the setting itself is gone) was something an
  operator had agreed to run: it becomes a PluginDefinition with the same argv, env, cwd and
  secret env, granted to that tenant only, and the row becomes its enablement (same name, so
  agents' enabled_tools keep working). Operators should review these definitions (their
  description says where they came from): the old allow-list bound the command only.
- Any other stdio row is disabled with the reason in status_message; its config stays for the
  operator to read, and nothing ever starts it again.
- HTTP rows: `config.headers` are merged into the encrypted secrets (a secret header of the
  same name wins) and removed from `config`; secret env variables of an HTTP row are dropped
  (no process gets them). Secrets that cannot be decrypted with the configured key are lost
  (they could not be sent either).
"""

from __future__ import annotations

import json

import environ
from django.db import migrations

from apps.agents.crypto import decrypt_secret, encrypt_secret

DISABLED_REASON = (
    "Disabled by the platform: stdio MCP servers are registered by operators now, and the command "
    "'{command}' was not in MCP_STDIO_ALLOWED_COMMANDS. Ask an operator to define it; this registration "
    "never runs again."
)


def _secrets(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(decrypt_secret(token))
    except ValueError:
        return {}


def _token(value: dict) -> str:
    value = {key: item for key, item in value.items() if item}
    return encrypt_secret(json.dumps(value)) if value else ""


def _free_name(definition_model, name: str) -> str:
    candidate, n = name, 1
    while definition_model.objects.filter(name=candidate).exists():
        n += 1
        candidate = f"{name[:28]}-{n}"
    return candidate


def forwards(apps, schema_editor):  # noqa: ARG001 - RunPython's signature
    plugin_model = apps.get_model("tools", "Plugin")
    definition_model = apps.get_model("tools", "PluginDefinition")
    allowed = set(environ.Env().list("MCP_STDIO_ALLOWED_COMMANDS", default=[]))
    for plugin in plugin_model.objects.filter(kind="mcp", definition__isnull=True).order_by("created_at"):
        config = dict(plugin.config or {})
        secrets = _secrets(plugin.secrets_encrypted)
        transport = config.get("transport") or ("http" if config.get("url") else "stdio")
        if transport == "http":
            headers = {**(config.pop("headers", None) or {}), **secrets.get("headers", {})}
            plugin.config = {**config, "transport": "http"}
            plugin.secrets_encrypted = _token({"headers": headers})
            plugin.save(update_fields=["config", "secrets_encrypted"])
            continue
        command = config.get("command") or ""
        if command and command in allowed:
            definition = definition_model.objects.create(
                name=_free_name(definition_model, plugin.name),
                description=(
                    f"Migrated from the stdio registration '{plugin.name}' of tenant {plugin.tenant_id}; "
                    f"review its argv. {plugin.description}"
                ).strip(),
                command=command,
                args=list(config.get("args") or []),
                env=dict(config.get("env") or {}),
                cwd=config.get("cwd") or "",
                secrets_encrypted=_token({"env": secrets.get("env", {})}),
                timeout_seconds=config.get("timeout_seconds"),
                tool_side_effects=dict(config.get("tool_side_effects") or {}),
            )
            definition.granted_tenants.add(plugin.tenant_id)
            plugin.definition = definition
            plugin.config = {"transport": "stdio"}
            plugin.secrets_encrypted = ""
            plugin.generation += 1
            plugin.save(update_fields=["definition", "config", "secrets_encrypted", "generation"])
        else:
            plugin.enabled = False
            plugin.status = "error"
            plugin.status_message = DISABLED_REASON.format(command=command[:200])
            plugin.config = {**config, "transport": "stdio"}
            plugin.secrets_encrypted = ""  # nothing will ever start it with these
            plugin.generation += 1
            plugin.save(
                update_fields=["enabled", "status", "status_message", "config", "secrets_encrypted", "generation"]
            )


class Migration(migrations.Migration):
    dependencies = [("tools", "0002_plugin_definitions")]

    # Not reversed: putting headers back in clear text, or giving stdio commands back to tenants,
    # is what this migration exists to stop. Going back leaves the data as it is.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
