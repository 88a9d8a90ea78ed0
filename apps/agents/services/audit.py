"""The audit trail of this app's writes, in tenancy's append-only AuditLog."""

from __future__ import annotations

from typing import Any

from apps.agents.models import Agent, Provider
from apps.tenancy.models import AuditLog, Tenant
from apps.tenancy.principal import Actor
from apps.tenancy.services import audit_record


class AuditAction:
    """Audit log actions of this app; the choices themselves live with the AuditLog."""

    PROVIDER_CREATED = AuditLog.Action.PROVIDER_CREATED
    PROVIDER_UPDATED = AuditLog.Action.PROVIDER_UPDATED
    PROVIDER_DELETED = AuditLog.Action.PROVIDER_DELETED
    PROVIDER_KEY_SET = AuditLog.Action.PROVIDER_KEY_SET
    PROVIDER_KEY_DELETED = AuditLog.Action.PROVIDER_KEY_DELETED
    BREAKER_RESET = AuditLog.Action.PROVIDER_BREAKER_RESET
    AGENT_CREATED = AuditLog.Action.AGENT_CREATED
    AGENT_UPDATED = AuditLog.Action.AGENT_UPDATED
    AGENT_DELETED = AuditLog.Action.AGENT_DELETED


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # "not given", where None is a meaningful value (clear a model, a temperature)


def audit(
    *,
    tenant: Tenant,
    actor: Actor,
    action: str,
    provider: Provider | None = None,
    agent: Agent | None = None,
    data: dict | None = None,
) -> None:
    target = provider if provider is not None else agent
    audit_record(
        tenant=tenant,
        actor=actor,
        action=action,
        target_type="provider" if provider is not None else "agent",
        target_id=str(target.pk),
        data={"name": target.name, **(data or {})},
    )
