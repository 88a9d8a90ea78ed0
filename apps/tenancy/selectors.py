"""Reads in tenancy, always scoped to a tenant where the data belongs to one."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.utils import timezone

from apps.tenancy.models import ApiKey, AuditLog, Invitation, Membership, Tenant


def api_key_by_prefix(*, prefix: str) -> ApiKey | None:
    """The one lookup that precedes knowing the tenant: it is how the tenant is found."""
    return ApiKey.objects.select_related("tenant", "created_by").filter(prefix=prefix).first()


def membership_for_session(*, user, preferred_tenant_id: str | None) -> Membership | None:
    # Only active tenants: a suspended one must not lock its members out of their other tenants.
    memberships = (
        Membership.objects.select_related("tenant")
        .filter(user=user, tenant__status=Tenant.Status.ACTIVE)
        .order_by("created_at")
    )
    if preferred_tenant_id:
        chosen = memberships.filter(tenant_id=preferred_tenant_id).first()
        if chosen is not None:
            return chosen
    return memberships.first()


def membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("created_at")


def membership_get(*, tenant: Tenant, membership_id: uuid.UUID) -> Membership | None:
    return membership_list(tenant=tenant).filter(pk=membership_id).first()


def api_key_list(*, tenant: Tenant, include_revoked: bool = True) -> QuerySet[ApiKey]:
    keys = ApiKey.objects.filter(tenant=tenant).select_related("created_by").order_by("-created")
    return keys if include_revoked else keys.filter(revoked=False)


def api_key_get(*, tenant: Tenant, key_id: uuid.UUID) -> ApiKey | None:
    return api_key_list(tenant=tenant).filter(pk=key_id).first()


def audit_log_list(
    *, tenant: Tenant, action: str | None = None, actor: str | None = None, since=None, until=None
) -> QuerySet[AuditLog]:
    """Newest first. `actor` matches part of the actor's label (`user:ana`, `api_key:ap_1234`),
    case-insensitively; `since` is inclusive, `until` exclusive."""
    entries = AuditLog.objects.filter(tenant=tenant).order_by("-created_at")
    if action:
        entries = entries.filter(action=action)
    if actor:
        entries = entries.filter(actor_label__icontains=actor)
    if since is not None:
        entries = entries.filter(created_at__gte=since)
    if until is not None:
        entries = entries.filter(created_at__lt=until)
    return entries


def audit_action_list(*, tenant: Tenant) -> list[str]:
    """The actions this tenant's log holds (apps record their own beyond AuditLog.Action), sorted."""
    found = AuditLog.objects.filter(tenant=tenant).values_list("action", flat=True).distinct()
    return sorted(set(found))


def invitation_list(*, tenant: Tenant, status: str = Invitation.Status.PENDING) -> QuerySet[Invitation]:
    """The tenant's invitations; `status` is pending, accepted, revoked, expired or all."""
    invitations = Invitation.objects.filter(tenant=tenant).order_by("-created_at")
    now = timezone.now()
    open_ = {"accepted_at__isnull": True, "revoked_at__isnull": True}
    if status == Invitation.Status.PENDING:
        return invitations.filter(**open_, expires_at__gt=now)
    if status == Invitation.Status.EXPIRED:
        return invitations.filter(**open_, expires_at__lte=now)
    if status == Invitation.Status.ACCEPTED:
        return invitations.filter(accepted_at__isnull=False)
    if status == Invitation.Status.REVOKED:
        return invitations.filter(revoked_at__isnull=False, accepted_at__isnull=True)
    return invitations
