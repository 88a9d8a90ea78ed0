"""Policy decisions, rules, safe mode, and approvals of gated tool calls."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied, ValidationError

from apps.core.errors import Conflict
from apps.core.redaction import redact_data, redact_text
from apps.events import types as ev
from apps.events.services import publish
from apps.policy.models import Action, Approval, PolicySettings, ToolRule
from apps.tenancy.models import ROLE_RANK, Role
from apps.tenancy.principal import Actor
from apps.tenancy.services import audit_record
from apps.tools.registry import SideEffect


@dataclass(frozen=True)
class PolicyDecision:
    action: str  # allow | deny | require_approval
    reason: str


def _tenant_settings(tenant) -> PolicySettings | None:
    return PolicySettings.objects.filter(tenant=tenant, agent__isnull=True).first()


def policy_decide(*, tenant, agent, tool, arguments: dict[str, Any]) -> PolicyDecision:  # noqa: ARG001
    """The first of these that applies decides:

    1. safe mode: every write or external tool is denied;
    2. the agent's rule for this tool, then the tenant's;
    3. the agent's default, then the tenant's default (allow when nothing is set), unless the
       tool's own default (`Tool.default_action`, e.g. schedule_task's require_approval) is
       stricter.
    """
    tenant_settings = _tenant_settings(tenant)
    if tenant_settings and tenant_settings.safe_mode and tool.side_effect in (SideEffect.WRITE, SideEffect.EXTERNAL):
        why = f": {tenant_settings.safe_mode_reason}" if tenant_settings.safe_mode_reason else ""
        return PolicyDecision(Action.DENY, f"safe mode is on{why} ({tool.side_effect} tools are blocked)")
    scope = Q(agent__isnull=True) | Q(agent=agent) if agent is not None else Q(agent__isnull=True)
    # Agent-specific rules sort first (NULL agent last), so the agent overrides the tenant.
    rule = ToolRule.objects.filter(scope, tenant=tenant, tool_name=tool.name).order_by("agent_id").first()
    if rule is not None:
        whose = f"agent {agent.name}'s" if rule.agent_id else "tenant"
        return PolicyDecision(rule.action, f"{whose} rule for {tool.name}: {rule.action}")
    configured = _configured_default(tenant=tenant, agent=agent, tenant_settings=tenant_settings)
    own = getattr(tool, "default_action", None)
    if own and _STRICTNESS.get(own, 0) > _STRICTNESS.get(configured.action, 0):
        return PolicyDecision(own, f"{tool.name}'s own default: {own} (a rule for {tool.name} can change it)")
    return configured


# A tool's own default (Tool.default_action) applies only when it is stricter than the configured
# one: a tenant that denies by default keeps denying schedule_task.
_STRICTNESS = {Action.ALLOW: 0, Action.REQUIRE_APPROVAL: 1, Action.DENY: 2}


def _configured_default(*, tenant, agent, tenant_settings) -> PolicyDecision:
    if agent is not None:
        agent_settings = PolicySettings.objects.filter(tenant=tenant, agent=agent).first()
        if agent_settings is not None:
            return PolicyDecision(
                agent_settings.default_action, f"agent {agent.name}'s default: {agent_settings.default_action}"
            )
    if tenant_settings is not None:
        return PolicyDecision(tenant_settings.default_action, f"tenant default: {tenant_settings.default_action}")
    return PolicyDecision(Action.ALLOW, "no rule for this tool and no default set: allow")


# --- rules and defaults -------------------------------------------------------------------------


def policy_set_default(*, tenant, actor: Actor, action: str, agent=None) -> PolicySettings:
    if action not in Action.values:
        raise ValidationError({"default_action": [f"One of {', '.join(Action.values)}."]})
    with transaction.atomic():
        row, _ = PolicySettings.objects.get_or_create(tenant=tenant, agent=agent)
        row.default_action = action
        row.save(update_fields=["default_action", "updated_at"])
        audit_record(
            tenant=tenant,
            actor=actor,
            action="policy.default_set",
            target_type="agent" if agent else "tenant",
            target_id=str(agent.pk if agent else tenant.pk),
            data={"default_action": action},
        )
    return row


def tool_rule_set(*, tenant, actor: Actor, tool_name: str, action: str, agent=None) -> ToolRule:
    if action not in Action.values:
        raise ValidationError({"action": [f"One of {', '.join(Action.values)}."]})
    with transaction.atomic():
        rule, _ = ToolRule.objects.update_or_create(
            tenant=tenant, agent=agent, tool_name=tool_name, defaults={"action": action}
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action="policy.rule_set",
            target_type="tool",
            target_id=tool_name,
            data={"action": action, "agent": agent.name if agent else None},
        )
    return rule


def tool_rule_delete(*, tenant, actor: Actor, tool_name: str, agent=None) -> bool:
    with transaction.atomic():
        deleted, _ = ToolRule.objects.filter(tenant=tenant, agent=agent, tool_name=tool_name).delete()
        if deleted:
            audit_record(
                tenant=tenant,
                actor=actor,
                action="policy.rule_deleted",
                target_type="tool",
                target_id=tool_name,
                data={"agent": agent.name if agent else None},
            )
    return bool(deleted)


def safe_mode_enter(*, tenant, actor: Actor, reason: str) -> PolicySettings:
    with transaction.atomic():
        row, _ = PolicySettings.objects.select_for_update().get_or_create(tenant=tenant, agent=None)
        row.safe_mode, row.safe_mode_reason, row.safe_mode_since = True, reason[:500], timezone.now()
        row.save(update_fields=["safe_mode", "safe_mode_reason", "safe_mode_since", "updated_at"])
        audit_record(
            tenant=tenant,
            actor=actor,
            action="policy.safe_mode_entered",
            target_type="tenant",
            target_id=str(tenant.pk),
            data={"reason": reason[:500]},
        )
    return row


def safe_mode_exit(*, tenant, actor: Actor) -> PolicySettings:
    with transaction.atomic():
        row, _ = PolicySettings.objects.select_for_update().get_or_create(tenant=tenant, agent=None)
        was_on = row.safe_mode
        row.safe_mode, row.safe_mode_reason, row.safe_mode_since = False, "", None
        row.save(update_fields=["safe_mode", "safe_mode_reason", "safe_mode_since", "updated_at"])
        if was_on:
            audit_record(
                tenant=tenant,
                actor=actor,
                action="policy.safe_mode_exited",
                target_type="tenant",
                target_id=str(tenant.pk),
            )
    return row


# --- approvals ------------------------------------------------------------------------------------


def arguments_hash(tool_name: str, arguments: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"tool": tool_name, "arguments": arguments}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def tool_call_ids(tool_call) -> dict[str, str]:
    """Our id of a tool call and the model's, kept apart: a model numbers its calls per turn
    (the offline model says `call_offline_1` in every turn), so only ours names one call."""
    return {"tool_call_id": str(tool_call.pk), "model_call_id": tool_call.call_id}


def approval_request(*, tenant, turn, tool_call, reason: str) -> Approval:
    """Called by the engine when a tool call is gated; the turn then waits.

    The approver sees the arguments redacted, and the call runs with exactly these arguments
    once approved (the engine checks `args_hash` and the stored call against them), so nothing
    runs that the approver did not see. The engine stores the call redacted already; redacting
    again here keeps that true for any other caller and changes nothing otherwise."""
    arguments = redact_data(tool_call.arguments)
    approval, _ = Approval.objects.get_or_create(
        tool_call=tool_call,
        defaults={
            "tenant": tenant,
            "turn": turn,
            "tool_name": tool_call.name,
            "arguments": arguments,
            "args_hash": arguments_hash(tool_call.name, arguments),
            "policy_reason": redact_text(reason),
            "expires_at": timezone.now() + timedelta(seconds=settings.APPROVAL_TTL_SECONDS),
        },
    )
    return approval


def approval_role(tenant) -> str:
    role = (tenant.settings or {}).get("approval_role") or Role.ADMIN
    return role if role in ROLE_RANK else Role.ADMIN


def approval_decide(
    *, tenant, actor: Actor, actor_role: str, approval: Approval, approve: bool, reason: str = ""
) -> Approval:
    """Approve or deny once. Expired approvals cannot be decided; the decision is audited and
    published. Policy decides and nothing more: the caller (conversations' turns/approvals.py)
    holds the turn's row lock around this and resumes the turn in the same transaction."""
    needed = approval_role(tenant)
    if ROLE_RANK[actor_role] < ROLE_RANK[needed]:
        raise PermissionDenied(f"Deciding approvals needs the {needed} role.")
    status = Approval.Status.APPROVED if approve else Approval.Status.DENIED
    now = timezone.now()
    with transaction.atomic():
        decided = Approval.objects.filter(
            pk=approval.pk, tenant=tenant, status=Approval.Status.PENDING, expires_at__gt=now
        ).update(
            status=status,
            decided_by=actor.user if getattr(actor.user, "pk", None) else None,
            decided_by_label=actor.label[:200],
            decided_at=now,
            decision_reason=redact_text(reason)[:2000],
        )
        approval.refresh_from_db()
        if not decided:
            state = "expired" if approval.status == Approval.Status.PENDING else approval.status
            raise Conflict(f"This approval is already {state}; it cannot be decided now.")
        audit_record(
            tenant=tenant,
            actor=actor,
            action=f"approval.{status}",
            target_type="approval",
            target_id=str(approval.pk),
            data={"tool": approval.tool_name, "reason": reason[:500]},
        )
        publish(
            tenant,
            ev.APPROVAL_RESOLVED,
            {
                "approval_id": str(approval.pk),
                **tool_call_ids(approval.tool_call),
                "status": status,
                "decided_by": actor.label,
                "decision_reason": approval.decision_reason,
            },
            session=approval.turn.session_id,
            turn=approval.turn_id,
        )
    return approval


def approvals_due_for_expiry(*, now=None, limit: int = 500) -> list[Approval]:
    now = now or timezone.now()
    pending = Approval.objects.filter(status=Approval.Status.PENDING, expires_at__lte=now)
    return list(pending.select_related("turn", "tool_call", "tenant")[:limit])


def approval_expire(*, approval: Approval, now=None) -> bool:
    """A pending approval past its time counts as denied: closed and published. The caller
    resumes its turn (the model is told the call did not run)."""
    now = now or timezone.now()
    if not Approval.objects.filter(pk=approval.pk, status=Approval.Status.PENDING).update(
        status=Approval.Status.EXPIRED,
        decided_at=now,
        decided_by_label="system:expiry",
        decision_reason="expired before anyone decided",
    ):
        return False
    publish(
        approval.tenant,
        ev.APPROVAL_RESOLVED,
        {
            "approval_id": str(approval.pk),
            **tool_call_ids(approval.tool_call),
            "status": Approval.Status.EXPIRED,
            "decided_by": "system:expiry",
            "decision_reason": "expired before anyone decided",
        },
        session=approval.turn.session_id,
        turn=approval.turn_id,
    )
    return True


def approvals_close_for_turn(*, turn_id, reason: str, label: str) -> int:
    """The turn was stopped: its pending approvals will never be acted on."""
    return Approval.objects.filter(turn_id=turn_id, status=Approval.Status.PENDING).update(
        status=Approval.Status.EXPIRED,
        decided_at=timezone.now(),
        decided_by_label=label[:200],
        decision_reason=reason[:2000],
    )
