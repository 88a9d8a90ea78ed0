"""Plugins (Python and MCP), skills and their agents, and AI rules; all tenant-owned, except the
operators' catalog of stdio MCP servers (PluginDefinition), which tenants only enable."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

from apps.core.models import TenantOwnedModel, TimestampedModel

# Plugin and skill names: lower-case, digits and hyphens, starting with a letter. No underscore,
# so `<plugin>__<tool>` splits one way only; short, so the qualified tool name stays within the
# 64 characters model APIs accept.
PLUGIN_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
SKILL_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,63}$"


class PluginDefinition(TimestampedModel):
    """An operator-registered stdio MCP server: the full argv, environment and folder it runs with.

    Not tenant-owned: a tenant *enables* a definition it was granted (a Plugin row pointing here)
    and can never change what runs on the host. `env` holds fixed values, `env_passthrough` the
    names of the platform's own variables the server may inherit (nothing else of the platform's
    environment reaches it), `secrets_encrypted` a Fernet token of JSON {"env": {...}}.
    """

    name = models.CharField(max_length=32, unique=True, validators=[RegexValidator(PLUGIN_NAME_PATTERN)])
    description = models.TextField(blank=True)
    command = models.CharField(max_length=500, help_text="The executable, best an absolute path.")
    args = models.JSONField(default=list, blank=True, help_text="The arguments, a JSON list of strings.")
    env = models.JSONField(default=dict, blank=True, help_text="Fixed environment variables (not secret).")
    env_passthrough = models.JSONField(
        default=list, blank=True, help_text="Names of the platform's environment variables the server inherits."
    )
    cwd = models.CharField(max_length=500, blank=True, help_text="The working folder (empty: the platform's).")
    secrets_encrypted = models.TextField(blank=True, editable=False)
    timeout_seconds = models.FloatField(null=True, blank=True)
    tool_side_effects = models.JSONField(
        default=dict, blank=True, help_text="Remote tool name -> read | write | external (default external)."
    )
    available_to_all = models.BooleanField(
        default=False, help_text="Every tenant may enable it; otherwise only the tenants granted below."
    )
    granted_tenants = models.ManyToManyField("tenancy.Tenant", blank=True, related_name="+")

    class Meta:
        ordering = ["name"]
        verbose_name = "stdio MCP server definition"

    def __str__(self) -> str:
        return self.name


class Plugin(TenantOwnedModel):
    """A source of tools for one tenant: a Python plugin installed on the platform, or an MCP server.

    `discovered_tools` is what the source offered when last asked: a list of
    `{name, remote_name, description, parameters, side_effect, annotations}` where `name` is the
    qualified `<plugin>__<tool>` the models see and `remote_name` what the source calls it.
    """

    class Kind(models.TextChoices):
        BUILTIN = "builtin", "Built-in"
        PYTHON = "python", "Python plugin"
        MCP = "mcp", "MCP server"

    class Status(models.TextChoices):
        NEW = "new", "Not discovered yet"
        READY = "ready", "Ready"
        ERROR = "error", "Error"
        UNAVAILABLE = "unavailable", "Code not installed"

    name = models.CharField(max_length=32, validators=[RegexValidator(PLUGIN_NAME_PATTERN)])
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.TextField(blank=True)
    # HTTP MCP: {transport: http, url, timeout_seconds, tool_side_effects: {remote tool:
    # read|write|external}}. Stdio MCP: {transport: stdio} and `definition` says what runs.
    # Never secrets, headers included: those are below.
    config = models.JSONField(default=dict, blank=True)
    # Fernet token of JSON {"headers": {...}} (HTTP MCP): write-only, shown by name and hint.
    secrets_encrypted = models.TextField(blank=True, editable=False)
    # Stdio MCP: the operator's definition this tenant enabled (argv, env and cwd come from it).
    definition = models.ForeignKey(
        PluginDefinition, null=True, blank=True, on_delete=models.PROTECT, related_name="enablements"
    )
    enabled = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    status_message = models.TextField(blank=True)
    discovered_tools = models.JSONField(default=list, blank=True)
    discovered_at = models.DateTimeField(null=True, blank=True)
    # Bumped by discover/disconnect/config changes: every process drops a connection made for
    # an older generation the next time it uses it.
    generation = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="plugin_unique_name_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Skill(TenantOwnedModel):
    """Instructions an agent can be given: from the catalog on disk or written for the tenant.

    `sha256` is the hash of the skill's markdown as installed (front matter and body): for a
    catalog skill, the file's bytes; the audit compares it with the file on disk.
    """

    class Source(models.TextChoices):
        CATALOG = "catalog", "Catalog"
        CUSTOM = "custom", "Custom"

    name = models.CharField(max_length=64, validators=[RegexValidator(SKILL_NAME_PATTERN)])
    description = models.TextField(blank=True)
    instructions = models.TextField(help_text="Markdown added to the system prompt of the agents it is enabled for.")
    version = models.CharField(max_length=32, blank=True)
    sha256 = models.CharField(max_length=64)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.CUSTOM)
    source_path = models.CharField(max_length=255, blank=True, help_text="Catalog skills: the file, under SKILLS_DIR.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="skill_unique_name_per_tenant")]

    def __str__(self) -> str:
        return self.name


class AgentSkill(TenantOwnedModel):
    """A skill enabled for an agent (both of the same tenant)."""

    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="agent_links")

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["agent", "skill"], name="agent_skill_unique")]

    def __str__(self) -> str:
        return f"{self.agent_id} -> {self.skill_id}"


class AiRule(TenantOwnedModel):
    """A standing instruction from the tenant, added to every agent's system prompt."""

    text = models.TextField()
    priority = models.SmallIntegerField(default=0, help_text="Higher first.")
    category = models.CharField(max_length=32, default="general")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["-priority", "created_at"]
        indexes = [models.Index(fields=["tenant", "enabled"], name="airule_tenant_enabled")]

    def __str__(self) -> str:
        return self.text[:60]
