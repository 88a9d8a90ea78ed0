"""Operators' view of memory: entries by tenant, kind and collection, read-only (deleting is allowed);
vectors are never shown."""

from __future__ import annotations

from django.contrib import admin

from apps.memory.models import MemoryEntry


@admin.register(MemoryEntry)
class MemoryEntryAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "tenant",
        "kind",
        "collection",
        "category",
        "agent",
        "importance",
        "embedded",
        "created_at",
    ]
    list_filter = ["kind", "embedding_model", "tenant"]
    search_fields = ["=id", "collection", "category", "content", "summary"]
    list_select_related = ["tenant", "agent"]
    fields = [
        "id",
        "tenant",
        "agent",
        "session",
        "turn",
        "kind",
        "collection",
        "category",
        "topic",
        "content",
        "summary",
        "keywords",
        "importance",
        "metadata",
        "expires_at",
        "embedded",
        "embedding_model",
        "source_key",
        "created_at",
        "updated_at",
    ]

    # Read-only: an edit here would leave the stored vector describing the old text.
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding", "search_vector")

    @admin.display(boolean=True, description="Embedded")
    def embedded(self, obj) -> bool:
        return bool(obj.embedding_model)

    def has_add_permission(self, request) -> bool:
        return False  # entries come from the API, tools and the agent loop, which embed them
