"""Operators' view of sessions, their messages, turns with their tool calls, and feedback; and
the tenants' suspend action, which stops their turns."""

from __future__ import annotations

from django.contrib import admin, messages

from apps.conversations.models import Attachment, ChatSession, Feedback, Message, ToolCall, Turn
from apps.conversations.services import tenant_suspend_and_stop
from apps.tenancy.admin import TenantAdmin, admin_actor
from apps.tenancy.models import Tenant


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["created_at", "role", "text_preview", "metadata"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    @admin.display(description="Text")
    def text_preview(self, obj) -> str:
        return obj.text[:200]


class ToolCallInline(admin.TabularInline):
    model = ToolCall
    extra = 0
    fields = ["step", "name", "arguments", "status", "duration_ms", "error", "result"]
    readonly_fields = fields
    can_delete = False


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "tenant", "agent", "mode", "archived", "last_activity_at"]
    list_filter = ["mode", "archived", "tenant"]
    search_fields = ["title", "nickname", "=id"]
    readonly_fields = ["id", "tenant", "created_by", "created_at", "last_activity_at"]
    inlines = [MessageInline]


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "tenant",
        "session",
        "status",
        "model",
        "step_count",
        "tool_call_count",
        "cost_usd",
        "duration_ms",
        "created_at",
    ]
    list_filter = ["status", "tenant"]
    search_fields = ["=id", "=session__id", "model"]
    readonly_fields = [f.name for f in Turn._meta.fields]
    inlines = [ToolCallInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "session", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["=id", "=session__id"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["turn", "tenant", "user", "grade", "created_at"]
    list_filter = ["grade", "tenant"]
    search_fields = ["comment", "=turn__id"]
    readonly_fields = ["tenant", "turn", "user", "created_at", "updated_at"]


class TenantAdminWithSuspend(TenantAdmin):
    """Tenancy's tenant admin plus the suspend action. Suspending also cancels the tenant's turns
    and closes its sockets (conversations.services.tenant_suspend_and_stop), and tenancy sits
    below conversations, so the action is added here and the admin re-registered (tenancy's
    admin module loads first: INSTALLED_APPS order)."""

    actions = ["suspend", *TenantAdmin.actions]

    @admin.action(description="Suspend selected tenants (keys stop working, turns and sockets are stopped)")
    def suspend(self, request, queryset):
        actor = admin_actor(request)
        done = sum(tenant_suspend_and_stop(tenant=t, actor=actor, reason="suspended in admin") for t in queryset)
        self.message_user(request, f"Suspended {done} tenant(s).", messages.SUCCESS)


admin.site.unregister(Tenant)
admin.site.register(Tenant, TenantAdminWithSuspend)


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    """Read-only: uploads are checked and stored by the API; deleting here would leave the file."""

    list_display = ["ref", "filename", "mime_type", "size", "tenant", "session", "uploaded_by_label", "created_at"]
    list_filter = ["mime_type", "tenant"]
    search_fields = ["=ref", "filename", "=sha256"]
    readonly_fields = [f.name for f in Attachment._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
