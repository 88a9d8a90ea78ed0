"""Every write in tenancy: tenants, members, API keys, the audit log."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify
from rest_framework.exceptions import PermissionDenied, ValidationError

from apps.core.errors import Conflict
from apps.core.ratelimit import ip_or_none
from apps.tenancy.models import ROLE_RANK, ApiKey, AuditLog, Membership, Role, Scope, Tenant
from apps.tenancy.principal import Actor, lower_role, may_grant

logger = logging.getLogger(__name__)
User = get_user_model()


# --- audit ---------------------------------------------------------------------------------------


def audit_record(
    *,
    tenant: Tenant | None,
    actor: Actor,
    action: str,
    target_type: str = "",
    target_id: str = "",
    data: dict[str, Any] | None = None,
) -> AuditLog:
    return AuditLog.objects.create(
        tenant=tenant,
        action=action,
        actor_user=actor.user if getattr(actor.user, "pk", None) else None,
        actor_key=actor.api_key,
        actor_label=actor.label[:200],
        target_type=target_type,
        target_id=str(target_id)[:128],
        data=data or {},
        ip=ip_or_none(actor.ip),
        request_id=actor.request_id[:128],
    )


def audit_login_failed(*, username: str, ip: str | None, channel: str, tenant: Tenant | None = None) -> None:
    audit_record(
        tenant=tenant,
        actor=Actor(label=f"anonymous:{username}"[:200] if username else "anonymous", ip=ip),
        action=AuditLog.Action.LOGIN_FAILED,
        data={"username": username[:150], "channel": channel},
    )


def audit_login_failed_receiver(sender, credentials: dict, request=None, **kwargs) -> None:  # noqa: ARG001
    from apps.core.ratelimit import client_address

    username = str(credentials.get("username", ""))
    ip = client_address(request) if request is not None else None
    user = User.objects.filter(username=username).first() if username else None
    membership = Membership.objects.filter(user=user).select_related("tenant").first() if user else None
    audit_login_failed(username=username, ip=ip, channel="password", tenant=membership.tenant if membership else None)


# --- tenants -------------------------------------------------------------------------------------


def tenant_create(*, slug: str, name: str, actor: Actor, owner=None, settings: dict | None = None) -> Tenant:
    slug = slugify(slug)
    if not slug:
        raise ValidationError({"slug": ["A slug needs at least one letter or digit."]})
    with transaction.atomic():
        if Tenant.objects.filter(slug=slug).exists():
            raise Conflict(f"A tenant with slug '{slug}' already exists.")
        tenant = Tenant.objects.create(slug=slug, name=name or slug, settings=settings or {})
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditLog.Action.TENANT_CREATED,
            target_type="tenant",
            target_id=str(tenant.pk),
            data={"slug": slug},
        )
        if owner is not None:
            Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
            audit_record(
                tenant=tenant,
                actor=actor,
                action=AuditLog.Action.MEMBER_ADDED,
                target_type="user",
                target_id=str(owner.pk),
                data={"username": owner.get_username(), "role": Role.OWNER},
            )
    return tenant


def tenant_update(*, tenant: Tenant, actor: Actor, name: str | None = None, settings: dict | None = None) -> Tenant:
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        changed: dict[str, Any] = {}
        if name is not None and name != locked.name:
            locked.name = name
            changed["name"] = name
        if settings is not None:
            merged = {**locked.settings, **settings}
            if merged != locked.settings:
                locked.settings = merged
                changed["settings"] = settings
        if changed:
            locked.save(update_fields=["name", "settings", "updated_at"])
            audit_record(
                tenant=locked,
                actor=actor,
                action=AuditLog.Action.TENANT_UPDATED,
                target_type="tenant",
                target_id=str(locked.pk),
                data=changed,
            )
    return locked


def tenant_suspend(*, tenant: Tenant, actor: Actor, reason: str = "") -> bool:
    """Compare-and-set: returns False when the tenant was already suspended."""
    with transaction.atomic():
        updated = Tenant.objects.filter(pk=tenant.pk, status=Tenant.Status.ACTIVE).update(
            status=Tenant.Status.SUSPENDED,
            suspended_at=timezone.now(),
            suspended_reason=reason[:500],
            updated_at=timezone.now(),
        )
        if updated:
            audit_record(
                tenant=tenant,
                actor=actor,
                action=AuditLog.Action.TENANT_SUSPENDED,
                target_type="tenant",
                target_id=str(tenant.pk),
                data={"reason": reason[:500]},
            )
    return bool(updated)


def tenant_reactivate(*, tenant: Tenant, actor: Actor) -> bool:
    with transaction.atomic():
        updated = Tenant.objects.filter(pk=tenant.pk, status=Tenant.Status.SUSPENDED).update(
            status=Tenant.Status.ACTIVE, suspended_at=None, suspended_reason="", updated_at=timezone.now()
        )
        if updated:
            audit_record(
                tenant=tenant,
                actor=actor,
                action=AuditLog.Action.TENANT_REACTIVATED,
                target_type="tenant",
                target_id=str(tenant.pk),
            )
    return bool(updated)


# --- limits --------------------------------------------------------------------------------------


def tenant_limit_check(*, tenant: Tenant, setting: str, noun: str, count_existing) -> None:
    """Refuse one more `noun` when the tenant's `setting` (max_sessions, max_agents) is reached.

    Call inside the transaction that creates the object. Without a limit this costs nothing;
    with one, the tenant row is locked first so two concurrent creates cannot both pass the
    last free slot. `count_existing()` counts the tenant's objects under that lock.
    """
    if (tenant.settings or {}).get(setting) is None:
        return
    locked = Tenant.objects.select_for_update().only("settings").get(pk=tenant.pk)
    limit = (locked.settings or {}).get(setting)
    if limit is None:
        return
    existing = count_existing()
    if existing >= int(limit):
        raise Conflict(
            f"This tenant has reached its {setting} limit ({existing} of {int(limit)} {noun}). "
            f"Delete one, or ask an owner to raise {setting} with PATCH /api/tenants/current "
            f'{{"settings": {{"{setting}": ...}}}}.'
        )


# --- members -------------------------------------------------------------------------------------


# Members join through invitations (apps/tenancy/invitations.py): nothing here finds or creates
# user accounts on a tenant admin's behalf.


def _check_may_grant(*, actor_role: str, role: str) -> None:
    """Admins manage viewers, members and admins; only an owner can make or unmake an owner."""
    if may_grant(actor_role, role):
        return
    if role == Role.OWNER:
        raise PermissionDenied("Only an owner can grant or remove the owner role.")
    raise PermissionDenied("You cannot grant a role above your own.")


def _ensure_an_owner_remains(*, tenant: Tenant, leaving: Membership) -> None:
    if leaving.role != Role.OWNER:
        return
    others = Membership.objects.filter(tenant=tenant, role=Role.OWNER).exclude(pk=leaving.pk).exists()
    if not others:
        raise Conflict("A tenant needs at least one owner; make someone else owner first.")


def membership_change_role(
    *, tenant: Tenant, actor: Actor, actor_role: str, membership: Membership, role: str
) -> Membership:
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk, tenant=tenant)
        if locked.role == role:
            return locked
        _check_may_grant(actor_role=actor_role, role=locked.role)
        _check_may_grant(actor_role=actor_role, role=role)
        if ROLE_RANK[role] < ROLE_RANK[locked.role]:
            _ensure_an_owner_remains(tenant=tenant, leaving=locked)
            # The user's keys can never do more than the user.
            for key in ApiKey.objects.filter(tenant=tenant, created_by=locked.user_id).select_for_update():
                capped = lower_role(key.role, role)
                if capped != key.role:
                    key.role = capped
                    key.save(update_fields=["role"])
        previous = locked.role
        locked.role = role
        locked.save(update_fields=["role", "updated_at"])
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditLog.Action.MEMBER_ROLE_CHANGED,
            target_type="user",
            target_id=str(locked.user_id),
            data={"from": previous, "to": role},
        )
    return locked


def membership_remove(*, tenant: Tenant, actor: Actor, actor_role: str, membership: Membership) -> None:
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk, tenant=tenant)
        _check_may_grant(actor_role=actor_role, role=locked.role)
        _ensure_an_owner_remains(tenant=tenant, leaving=locked)
        # Keys a departed member made stop working with them.
        for key in ApiKey.objects.filter(tenant=tenant, created_by=locked.user_id, revoked=False):
            api_key_revoke(tenant=tenant, actor=actor, api_key=key, reason="member removed")
        username = locked.user.get_username()
        locked.delete()
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditLog.Action.MEMBER_REMOVED,
            target_type="user",
            target_id=str(locked.user_id),
            data={"username": username},
        )


# --- API keys ------------------------------------------------------------------------------------


def _clean_scopes(scopes: list[str] | None) -> list[str]:
    if not scopes:
        return [Scope.READ, Scope.WRITE]
    valid = set(Scope.values)
    unknown = sorted(set(scopes) - valid)
    if unknown:
        raise ValidationError({"scopes": [f"Unknown scope(s): {', '.join(unknown)}. Use {', '.join(Scope.values)}."]})
    return [s for s in Scope.values if s in scopes]  # canonical order, no duplicates


def api_key_create(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str,
    scopes: list[str] | None = None,
    role: str = Role.ADMIN,
    expires_at: datetime | None = None,
    created_by=None,
    monthly_budget_usd: Decimal | None = None,
) -> tuple[ApiKey, str]:
    """Returns the key row and the plaintext key, which exists only in this return value."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    clean = _clean_scopes(scopes)
    with transaction.atomic():
        api_key, plaintext = ApiKey.objects.create_key(
            tenant=tenant,
            name=name[:50],
            scopes=clean,
            role=role,
            expiry_date=expires_at,
            created_by=created_by,
            monthly_budget_usd=monthly_budget_usd,
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditLog.Action.KEY_CREATED,
            target_type="api_key",
            target_id=str(api_key.pk),
            data={"name": api_key.name, "prefix": api_key.prefix, "scopes": clean, "role": role},
        )
    return api_key, plaintext


def api_key_update(*, tenant: Tenant, actor: Actor, api_key: ApiKey, monthly_budget_usd: Decimal | None) -> ApiKey:
    """Set or clear the key's monthly budget (apps/conversations/budgets.py charges it)."""
    with transaction.atomic():
        ApiKey.objects.filter(pk=api_key.pk, tenant=tenant).update(monthly_budget_usd=monthly_budget_usd)
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditLog.Action.KEY_UPDATED,
            target_type="api_key",
            target_id=str(api_key.pk),
            data={
                "prefix": api_key.prefix,
                "monthly_budget_usd": None if monthly_budget_usd is None else str(monthly_budget_usd),
            },
        )
    api_key.refresh_from_db()
    return api_key


def api_key_revoke(*, tenant: Tenant, actor: Actor, api_key: ApiKey, reason: str = "") -> bool:
    """Compare-and-set; returns False when the key was already revoked."""
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=api_key.pk, tenant=tenant, revoked=False).update(
            revoked=True, revoked_at=timezone.now()
        )
        if updated:
            audit_record(
                tenant=tenant,
                actor=actor,
                action=AuditLog.Action.KEY_REVOKED,
                target_type="api_key",
                target_id=str(api_key.pk),
                data={"prefix": api_key.prefix, "reason": reason},
            )
    return bool(updated)


def api_key_touch(*, api_key: ApiKey, resolution_seconds: int = 60) -> None:
    """Record use at most once per `resolution_seconds`: one conditional UPDATE, no read."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < timedelta(seconds=resolution_seconds):
        return
    stale = now - timedelta(seconds=resolution_seconds)
    ApiKey.objects.filter(pk=api_key.pk).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)).update(
        last_used_at=now
    )
