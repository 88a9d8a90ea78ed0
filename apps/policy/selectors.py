from __future__ import annotations

import uuid

from django.db.models import QuerySet

from apps.policy.models import Approval, PolicySettings, ToolRule


def approval_list(*, tenant, status: str | None = Approval.Status.PENDING, turn=None) -> QuerySet[Approval]:
    approvals = Approval.objects.filter(tenant=tenant).select_related("turn", "tool_call")
    if turn is not None:
        approvals = approvals.filter(turn=turn)
    return approvals.filter(status=status) if status else approvals


def approval_history(*, tenant, limit: int = 20) -> list[Approval]:
    """The tenant's latest decided (or expired) approvals, most recently decided first."""
    decided = approval_list(tenant=tenant, status=None).exclude(status=Approval.Status.PENDING)
    return list(decided.select_related("turn__session").order_by("-decided_at", "-created_at")[:limit])


def approval_get(*, tenant, approval_id: uuid.UUID) -> Approval | None:
    return approval_list(tenant=tenant, status=None).filter(pk=approval_id).first()


def approval_for_session_call(
    *, tenant, session_id, tool_call_id=None, turn_id=None, model_call_id: str | None = None
) -> Approval | None:
    """A session's approval of one tool call, named by our id (`tool_call_id`) or by the turn and
    the model's id (`model_call_id` is unique only within its turn)."""
    approvals = Approval.objects.filter(tenant=tenant, turn__session_id=session_id)
    if turn_id is not None:
        approvals = approvals.filter(turn_id=turn_id)
    if tool_call_id is not None:
        approvals = approvals.filter(tool_call_id=tool_call_id)
    else:
        approvals = approvals.filter(tool_call__call_id=model_call_id)
    return approvals.first()


def policy_overview(*, tenant) -> dict:
    settings_rows = {row.agent_id: row for row in PolicySettings.objects.filter(tenant=tenant).select_related("agent")}
    tenant_row = settings_rows.get(None)
    rules = ToolRule.objects.filter(tenant=tenant).select_related("agent").order_by("tool_name")
    return {
        "default_action": tenant_row.default_action if tenant_row else "allow",
        "default_allow": (tenant_row.default_action if tenant_row else "allow") == "allow",
        "tools": [{"tool": r.tool_name, "action": r.action, "agent": r.agent.name if r.agent else None} for r in rules],
        "agents": {
            row.agent.name: {"default_action": row.default_action}
            for agent_id, row in settings_rows.items()
            if agent_id is not None
        },
        "safe_mode": safe_mode_status(tenant_row),
    }


def safe_mode_status(row: PolicySettings | None) -> dict:
    return {
        "enabled": bool(row and row.safe_mode),
        "reason": row.safe_mode_reason if row else "",
        "since": row.safe_mode_since.isoformat() if row and row.safe_mode_since else None,
    }


def tenant_safe_mode(*, tenant) -> dict:
    return safe_mode_status(PolicySettings.objects.filter(tenant=tenant, agent__isnull=True).first())
