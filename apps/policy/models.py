"""Who may run which tool: per-tenant rules with per-agent overrides, safe mode, and the human
approvals that gated tool calls wait for."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import TenantOwnedModel


class Action(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"
    REQUIRE_APPROVAL = "require_approval", "Require approval"


class PolicySettings(TenantOwnedModel):
    """The default for tools without a rule; one row for the tenant (agent empty) and optionally
    one per agent. Safe mode lives on the tenant's row."""

    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    default_action = models.CharField(max_length=24, choices=Action.choices, default=Action.ALLOW)
    safe_mode = models.BooleanField(default=False)
    safe_mode_reason = models.CharField(max_length=500, blank=True)
    safe_mode_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "agent"], name="policy_settings_one_per_scope", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"policy of {self.agent or 'tenant'}: {self.default_action}"


class ToolRule(TenantOwnedModel):
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    tool_name = models.CharField(max_length=200)
    action = models.CharField(max_length=24, choices=Action.choices)

    class Meta:
        ordering = ["tool_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "agent", "tool_name"], name="tool_rule_one_per_scope", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"{self.tool_name}: {self.action}"


class Approval(TenantOwnedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired"

    turn = models.ForeignKey("conversations.Turn", on_delete=models.CASCADE, related_name="approvals")
    tool_call = models.OneToOneField("conversations.ToolCall", on_delete=models.CASCADE, related_name="approval")
    tool_name = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict)
    # sha256 of the canonical JSON of {tool, arguments}: what was approved is what runs.
    args_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Two reasons, never one overwriting the other: why the policy asked, and what the person
    # (or the system, on expiry or cancel) said when deciding.
    policy_reason = models.TextField(blank=True, help_text="Why the policy asked for approval.")
    decision_reason = models.TextField(blank=True, help_text="Why it was approved or denied, as the decider said.")
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    decided_by_label = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "status", "-created_at"], name="approval_tenant_status")]

    def __str__(self) -> str:
        return f"{self.tool_name} ({self.status})"
