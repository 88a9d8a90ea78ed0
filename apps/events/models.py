"""The event log: every step of every turn, in order, so a client can replay what it missed."""

from __future__ import annotations

from django.db import models


class Event(models.Model):
    # A bigint sequence, not a UUID: clients resume "after event N", so ids must be ordered.
    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")
    session_id = models.UUIDField(null=True, blank=True)
    turn_id = models.UUIDField(null=True, blank=True)
    type = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["tenant", "id"], name="event_tenant_after"),
            models.Index(fields=["session_id", "id"], name="event_session_after"),
            models.Index(fields=["turn_id", "id"], name="event_turn_after"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.type}"
