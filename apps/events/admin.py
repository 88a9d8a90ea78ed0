from __future__ import annotations

from django.contrib import admin

from apps.events.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "tenant", "type", "session_id", "turn_id"]
    list_filter = ["type", "tenant"]
    search_fields = ["=session_id", "=turn_id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
