from __future__ import annotations

from django.contrib import admin

from apps.policy.models import Approval, PolicySettings, ToolRule


@admin.register(PolicySettings)
class PolicySettingsAdmin(admin.ModelAdmin):
    list_display = ["tenant", "agent", "default_action", "safe_mode", "safe_mode_since"]
    list_filter = ["default_action", "safe_mode"]


@admin.register(ToolRule)
class ToolRuleAdmin(admin.ModelAdmin):
    list_display = ["tool_name", "action", "tenant", "agent"]
    list_filter = ["action", "tenant"]
    search_fields = ["tool_name"]


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ["tool_name", "status", "tenant", "turn", "expires_at", "decided_by_label", "decided_at"]
    list_filter = ["status", "tenant"]
    search_fields = ["tool_name", "=turn__id"]
    readonly_fields = [f.name for f in Approval._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
