"""The operators' view of plugins (secrets masked), skills and AI rules.

Operators are trusted: a stdio MCP server registered here may use any command, not only those in
MCP_STDIO_ALLOWED_COMMANDS (the API's limit for tenants)."""

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
from apps.tools import services
from apps.tools.models import AgentSkill, AiRule, Plugin, Skill
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


class PluginAdminForm(forms.ModelForm):
    # Never pre-filled: the page never carries a secret, encrypted or not.
    new_secrets = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        label="Replace secrets",
        help_text='JSON {"env": {"NAME": "value"}, "headers": {"Authorization": "Bearer ..."}}; stored encrypted. '
        "Leave empty to keep the stored secrets; {} removes them.",
    )

    class Meta:
        model = Plugin
        fields = ["tenant", "name", "kind", "description", "config", "enabled"]

    def clean_new_secrets(self):
        raw = (self.cleaned_data.get("new_secrets") or "").strip()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError("Not valid JSON.") from exc

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind") or self.instance.kind
        if self.instance._state.adding and kind != Plugin.Kind.MCP:
            self.add_error("kind", "Only MCP servers are added here; Python plugins are enabled per tenant.")
        if kind == Plugin.Kind.MCP:
            try:
                services.mcp_config_clean(cleaned.get("config") or {}, cleaned.get("new_secrets"), trusted=True)
            except ApiValidationError as exc:
                self.add_error("config", _messages_of(exc))
        return cleaned


@admin.register(Plugin)
class PluginAdmin(admin.ModelAdmin):
    form = PluginAdminForm
    list_display = ["name", "tenant", "kind", "enabled", "status", "tool_count", "discovered_at"]
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

    @admin.display(description="Stored secrets")
    def stored_secrets(self, obj) -> str:
        try:
            secrets = services.plugin_secrets(obj)
        except ValueError:
            return "cannot be decrypted with the configured FIELD_ENCRYPTION_KEY"
        shown = [
            f"{kind}.{name} = {mask_secret(value)}"
            for kind, values in secrets.items()
            for name, value in values.items()
        ]
        return ", ".join(shown) or "none"

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant", "kind", "name"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data, actor = form.cleaned_data, _actor(request)
        try:
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
                    trusted=True,
                )
                obj.pk = created.pk
                return
            if obj.kind == Plugin.Kind.MCP and ("config" in form.changed_data or data.get("new_secrets") is not None):
                services.plugin_set_config(
                    tenant=obj.tenant,
                    actor=actor,
                    plugin=obj,
                    config=data.get("config") or {},
                    secrets=data.get("new_secrets"),
                    trusted=True,
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
