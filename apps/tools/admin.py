"""The operators' view of plugins (secrets masked), the stdio MCP server catalog, skills and AI rules.

Stdio MCP servers run on the platform's host, so they are defined here only (PluginDefinition:
the full argv, environment and folder) and granted to tenants, who enable them through the API.
A tenant's Plugin row never carries a command: the Plugin form takes HTTP servers, or a
definition to enable for a tenant on its behalf."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html_join
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError

from apps.agents.crypto import mask_secret
from apps.core.errors import Conflict
from apps.core.ratelimit import client_address
from apps.tenancy.principal import Actor
from apps.tools import definitions, services
from apps.tools import plugins as plugin_code
from apps.tools.models import AgentSkill, AiRule, Plugin, PluginDefinition, Skill
from apps.tools.registry import ToolError


def _actor(request) -> Actor:
    return Actor(
        user=request.user,
        label=f"admin:{request.user.get_username()}",
        ip=client_address(request),
        request_id=getattr(request, "request_id", ""),
    )


def _messages_of(exc: Exception) -> str:
    detail = getattr(exc, "detail", str(exc))
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {value}" for key, value in detail.items())
    return str(detail)


def _json_secret_field(label: str, help_text: str) -> forms.CharField:
    # Never pre-filled: the page never carries a secret, encrypted or not.
    return forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        label=label,
        help_text=help_text,
    )


def _json_or_none(raw: str | None):
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError("Not valid JSON.") from exc


class PluginAdminForm(forms.ModelForm):
    new_secrets = _json_secret_field(
        "Replace headers",
        'HTTP servers: JSON {"headers": {"Authorization": "Bearer ..."}}; stored encrypted. Leave empty to keep '
        "the stored headers; {} removes them.",
    )

    class Meta:
        model = Plugin
        fields = ["tenant", "name", "kind", "description", "definition", "config", "enabled"]

    def clean_new_secrets(self):
        return _json_or_none(self.cleaned_data.get("new_secrets"))

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind") or self.instance.kind
        if self.instance._state.adding and kind != Plugin.Kind.MCP:
            self.add_error("kind", "Only MCP servers are added here; Python plugins are enabled per tenant.")
        definition = cleaned.get("definition") if self.instance._state.adding else self.instance.definition
        if kind == Plugin.Kind.MCP and definition is None:
            adding = self.instance._state.adding
            if not adding and (self.instance.config or {}).get("transport") != "http":
                return cleaned  # a stdio row disabled by migration 0003: shown for review, never run
            try:
                services.mcp_config_clean(cleaned.get("config") or {}, cleaned.get("new_secrets"))
            except ApiValidationError as exc:
                self.add_error("config", _messages_of(exc))
        if self.instance._state.adding and definition is not None:
            tenant = cleaned.get("tenant")
            if tenant is not None and not definitions.definition_granted(definition, tenant.pk):
                self.add_error("definition", "Grant this definition to the tenant first (on the definition's page).")
        return cleaned


@admin.register(Plugin)
class PluginAdmin(admin.ModelAdmin):
    form = PluginAdminForm
    list_display = ["name", "tenant", "kind", "definition", "enabled", "status", "tool_count", "discovered_at"]
    list_filter = ["kind", "enabled", "status"]
    search_fields = ["name", "tenant__slug"]
    readonly_fields = [
        "id",
        "stored_secrets",
        "status",
        "status_message",
        "tool_list",
        "discovered_at",
        "generation",
        "created_at",
        "updated_at",
    ]
    fields = [
        "id",
        "tenant",
        "name",
        "kind",
        "definition",
        "description",
        "enabled",
        "config",
        "stored_secrets",
        "new_secrets",
        "status",
        "status_message",
        "tool_list",
        "discovered_at",
        "generation",
        "created_at",
        "updated_at",
    ]
    actions = ["discover", "disconnect"]

    @admin.display(description="Tools")
    def tool_count(self, obj) -> int:
        return len(obj.discovered_tools or [])

    @admin.display(description="Discovered tools")
    def tool_list(self, obj):
        tools = obj.discovered_tools or []
        return format_html_join(
            "\n",
            "<div><code>{}</code> ({}) {}</div>",
            ((t.get("name"), t.get("side_effect"), t.get("description", "")[:120]) for t in tools),
        )

    @admin.display(description="Stored headers")
    def stored_secrets(self, obj) -> str:
        shown = [f"{hint['name']} = {hint['hint']}" for hint in services.header_hints(obj)]
        return ", ".join(shown) or "none"

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return [*self.readonly_fields, "tenant", "kind", "name", "definition"]

    def save_model(self, request, obj, form, change):
        data, actor = form.cleaned_data, _actor(request)
        try:
            if not change and data.get("definition") is not None:
                # Enabling an operator's definition for a tenant, as the tenant's admin would.
                created = services.plugin_toggle(
                    tenant=data["tenant"], actor=actor, name=data["definition"].name, enabled=data.get("enabled", True)
                )
                obj.pk = created.pk
                return
            if not change:
                created = services.plugin_create(
                    tenant=data["tenant"],
                    actor=actor,
                    name=data["name"],
                    config=data.get("config") or {},
                    secrets=data.get("new_secrets"),
                    description=data.get("description", ""),
                    enabled=data.get("enabled", True),
                    discover=False,
                )
                obj.pk = created.pk
                return
            http = obj.kind == Plugin.Kind.MCP and (obj.config or {}).get("transport") == "http"
            if http and ("config" in form.changed_data or data.get("new_secrets") is not None):
                services.plugin_update(
                    tenant=obj.tenant,
                    actor=actor,
                    plugin=obj,
                    config=data.get("config") or {},
                    secrets=data.get("new_secrets"),
                )
            if "enabled" in form.changed_data:
                services.plugin_toggle(tenant=obj.tenant, actor=actor, name=obj.name, enabled=data["enabled"])
            if "description" in form.changed_data:
                Plugin.objects.filter(pk=obj.pk).update(description=data.get("description", ""))
        except (ApiValidationError, Conflict, NotFound) as exc:
            messages.error(request, f"Not saved: {_messages_of(exc)}")

    def delete_model(self, request, obj):
        services.plugin_delete(tenant=obj.tenant, actor=_actor(request), plugin=obj)

    @admin.action(description="Discover tools now")
    def discover(self, request, queryset):
        for plugin in queryset.exclude(kind=Plugin.Kind.BUILTIN):
            try:
                plugin = services.plugin_discover(tenant=plugin.tenant, actor=_actor(request), plugin=plugin)
            except (ToolError, Conflict) as exc:
                messages.error(request, f"{plugin.name}: {exc}")
                continue
            level = messages.SUCCESS if plugin.status == Plugin.Status.READY else messages.ERROR
            messages.add_message(request, level, f"{plugin.name}: {plugin.status} {plugin.status_message}".strip())

    @admin.action(description="Close MCP connections")
    def disconnect(self, request, queryset):
        for plugin in queryset.filter(kind=Plugin.Kind.MCP):
            services.plugin_disconnect(tenant=plugin.tenant, actor=_actor(request), plugin=plugin)
        messages.success(request, "Connections close in every process at their next use.")


class PluginDefinitionAdminForm(forms.ModelForm):
    new_secret_env = _json_secret_field(
        "Replace secret environment",
        'JSON {"API_TOKEN": "..."}: variables the server gets, stored encrypted. Leave empty to keep the '
        "stored ones; {} removes them.",
    )

    class Meta:
        model = PluginDefinition
        fields = [
            "name",
            "description",
            "command",
            "args",
            "env",
            "env_passthrough",
            "cwd",
            "timeout_seconds",
            "tool_side_effects",
            "available_to_all",
            "granted_tenants",
        ]

    def clean_new_secret_env(self):
        return _json_or_none(self.cleaned_data.get("new_secret_env"))

    def clean(self):
        cleaned = super().clean()
        try:
            launch = definitions.definition_clean(
                command=cleaned.get("command"),
                args=cleaned.get("args"),
                env=cleaned.get("env"),
                env_passthrough=cleaned.get("env_passthrough"),
                cwd=cleaned.get("cwd"),
                secret_env=cleaned.get("new_secret_env"),
            )
            definitions.timeout_clean(cleaned.get("timeout_seconds"), field="timeout_seconds")
            definitions.side_effects_clean(cleaned.get("tool_side_effects"), field="tool_side_effects")
        except ApiValidationError as exc:
            for field, errors in exc.detail.items():
                self.add_error(field if field in self.fields else None, [str(e) for e in errors])
            return cleaned
        cleaned.update({key: value for key, value in launch.items() if key != "secret_env"})
        name = cleaned.get("name")
        if self.instance._state.adding and name:
            if name == plugin_code.BUILTIN_PLUGIN_NAME or name in plugin_code.python_plugins().plugins:
                self.add_error("name", f"'{name}' is the name of a plugin installed on the platform.")
            elif Plugin.objects.filter(name=name, definition=None).exists():
                # Their tool names would clash: `<name>__<tool>` must mean one server per tenant.
                self.add_error("name", f"Tenants already have their own plugin named '{name}': choose another name.")
        return cleaned


@admin.register(PluginDefinition)
class PluginDefinitionAdmin(admin.ModelAdmin):
    form = PluginDefinitionAdminForm
    list_display = ["name", "command", "available_to_all", "enablement_count", "updated_at"]
    list_filter = ["available_to_all"]
    search_fields = ["name", "command", "description"]
    filter_horizontal = ["granted_tenants"]
    readonly_fields = ["id", "stored_secret_env", "created_at", "updated_at"]

    @admin.display(description="Enabled by tenants")
    def enablement_count(self, obj) -> int:
        return obj.enablements.filter(enabled=True).count()

    @admin.display(description="Stored secret environment")
    def stored_secret_env(self, obj) -> str:
        try:
            secret_env = definitions.definition_secret_env(obj)
        except ValueError:
            return "cannot be decrypted with the configured FIELD_ENCRYPTION_KEY"
        return ", ".join(f"{name} = {mask_secret(value)}" for name, value in sorted(secret_env.items())) or "none"

    def save_model(self, request, obj, form, change):
        services.plugin_definition_save(
            actor=_actor(request), definition=obj, secret_env=form.cleaned_data.get("new_secret_env")
        )


class AgentSkillInline(admin.TabularInline):
    model = AgentSkill
    extra = 0
    fields = ["agent", "created_at"]
    readonly_fields = ["agent", "created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # activation goes through POST /api/skills/catalog/activate (same tenant checked there)


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "source", "version", "enabled", "short_sha256", "updated_at"]
    list_filter = ["source", "enabled"]
    search_fields = ["name", "tenant__slug", "description"]
    # The content is read-only: `sha256` describes it, and the audit relies on that. Catalog skills
    # change on disk (then POST /api/skills/reload); custom ones are replaced through the API.
    readonly_fields = [
        "id",
        "tenant",
        "name",
        "source",
        "source_path",
        "description",
        "version",
        "instructions",
        "sha256",
        "created_at",
        "updated_at",
    ]
    fields = [
        "id",
        "tenant",
        "name",
        "source",
        "source_path",
        "description",
        "version",
        "instructions",
        "sha256",
        "enabled",
        "created_at",
        "updated_at",
    ]
    inlines = [AgentSkillInline]

    @admin.display(description="sha256")
    def short_sha256(self, obj) -> str:
        return obj.sha256[:12]

    def has_add_permission(self, request) -> bool:
        return False  # installed from the catalog or written through the API, which hash the content


@admin.register(AiRule)
class AiRuleAdmin(admin.ModelAdmin):
    list_display = ["short_text", "tenant", "category", "priority", "enabled", "updated_at"]
    list_filter = ["category", "enabled"]
    search_fields = ["text", "tenant__slug"]
    readonly_fields = ["id", "created_at", "updated_at"]
    fields = ["id", "tenant", "text", "category", "priority", "enabled", "created_at", "updated_at"]

    @admin.display(description="Rule")
    def short_text(self, obj) -> str:
        return obj.text[:80]
