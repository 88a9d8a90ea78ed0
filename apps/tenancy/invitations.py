"""Invitations: the only way a tenant admin brings someone in (services, like services.py).

Nothing here looks up user accounts before an invitee presents the token, so neither the
answers nor their timing tell an inviter whether an address has an account on the platform.
Accepting needs the token *and* a signed-in user whose email is the invited one, as GitHub's
organization invitations do: the token is the credential, the address match stops a forwarded
or leaked token (and the inviter, who saw the token) from being used by another account.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError

from apps.core.errors import Conflict
from apps.tenancy.models import AuditLog, Invitation, Membership, Role, Tenant
from apps.tenancy.principal import Actor
from apps.tenancy.services import _check_may_grant, audit_record

TOKEN_PREFIX = "inv_"  # noqa: S105 - a label that makes tokens recognisable, not a secret
# One answer for every token that cannot be used by this account: unknown, revoked, accepted,
# or someone else's. Telling them apart would tell a token holder whose invitation it is.
NOT_FOUND_MESSAGE = "No pending invitation for this account matches that token."
EXPIRED_MESSAGE = "This invitation has expired; ask the tenant's admin for a new one."


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _pending(*, tenant: Tenant, email: str):
    now = timezone.now()
    return Invitation.objects.filter(
        tenant=tenant, email=email, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    )


def invitation_create(
    *, tenant: Tenant, actor: Actor, actor_role: str, email: str, role: str = Role.MEMBER, invited_by=None
) -> tuple[Invitation, str]:
    """Returns the invitation and its token, which exists only in this return value.

    A newer invitation for the same address replaces a pending one (its token stops working).
    """
    _check_may_grant(actor_role=actor_role, role=role)
    email = email.strip().lower()
    if not email or "@" not in email:
        raise ValidationError({"email": ["Enter the email address to invite."]})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        # Only this tenant's own members are checked, which its admins can list anyway.
        if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
            raise Conflict("Someone with this email is already a member of this tenant.")
        for earlier in _pending(tenant=tenant, email=email).select_for_update():
            _revoke(tenant=tenant, actor=actor, invitation=earlier, reason="replaced by a newer invitation")
        invitation = Invitation.objects.create(
            tenant=tenant,
            email=email,
            role=role,
            token_hash=token_hash(token),
            invited_by=invited_by if getattr(invited_by, "pk", None) else None,
            invited_by_label=actor.label[:200],
            expires_at=now + timedelta(hours=settings.INVITATION_TTL_HOURS),
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditLog.Action.INVITATION_CREATED,
            target_type="invitation",
            target_id=str(invitation.pk),
            data={"email": email, "role": role, "expires_at": invitation.expires_at.isoformat()},
        )
    return invitation, token


def _revoke(*, tenant: Tenant, actor: Actor, invitation: Invitation, reason: str) -> bool:
    updated = Invitation.objects.filter(
        pk=invitation.pk, tenant=tenant, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now(), updated_at=timezone.now())
    if updated:
        audit_record(
            tenant=tenant,
            actor=actor,
            action=AuditLog.Action.INVITATION_REVOKED,
            target_type="invitation",
            target_id=str(invitation.pk),
            data={"email": invitation.email, "role": invitation.role, "reason": reason},
        )
    return bool(updated)


def invitation_revoke(*, tenant: Tenant, actor: Actor, actor_role: str, invitation: Invitation) -> bool:
    """Compare-and-set; False when it was already accepted or revoked. Owner invitations need an owner."""
    _check_may_grant(actor_role=actor_role, role=invitation.role)
    with transaction.atomic():
        return _revoke(tenant=tenant, actor=actor, invitation=invitation, reason="revoked")


def _usable_by(*, token: str, user, lock: bool = False) -> Invitation:
    """The invitation `token` opens for `user` (pending or expired); NotFound for anything else.

    The one rule the accept page and the accept service share: a token that is unknown, revoked,
    accepted, or for another address gets the same answer.
    """
    user_email = (getattr(user, "email", "") or "").strip().lower()
    if not token or len(token) > 200 or not user_email:
        raise NotFound(NOT_FOUND_MESSAGE)
    found = Invitation.objects.select_related("tenant").filter(token_hash=token_hash(token))
    if lock:
        found = found.select_for_update(of=("self",))
    invitation = found.first()
    if invitation is None or invitation.email != user_email:
        raise NotFound(NOT_FOUND_MESSAGE)
    if invitation.status_at(timezone.now()) not in (Invitation.Status.PENDING, Invitation.Status.EXPIRED):
        raise NotFound(NOT_FOUND_MESSAGE)
    return invitation


def invitation_preview(*, token: str, user) -> Invitation:
    """What the accept page shows before the invitee says yes (a read: nothing is recorded)."""
    return _usable_by(token=token, user=user)


def invitation_link(*, token: str, base_url: str) -> str:
    """The dashboard page that accepts `token` (`dashboard:invite`); `base_url` without a slash at the end."""
    return f"{base_url}/invite/{token}/"


def invitation_accept(*, token: str, user, actor: Actor) -> Membership:
    """Make `user` a member with the invited role. Raises NotFound for any token this user cannot use."""
    now = timezone.now()
    with transaction.atomic():
        invitation = _usable_by(token=token, user=user, lock=True)
        if invitation.status_at(now) == Invitation.Status.EXPIRED:
            # Committed (no exception inside the block): the refused use is what is recorded.
            audit_record(
                tenant=invitation.tenant,
                actor=actor,
                action=AuditLog.Action.INVITATION_EXPIRED,
                target_type="invitation",
                target_id=str(invitation.pk),
                data={"email": invitation.email, "expired_at": invitation.expires_at.isoformat()},
            )
        else:
            return _accept(invitation=invitation, user=user, actor=actor, now=now)
    raise Conflict(EXPIRED_MESSAGE)


def _accept(*, invitation: Invitation, user, actor: Actor, now) -> Membership:
    tenant = invitation.tenant
    if not tenant.is_active:
        raise Conflict("This tenant is suspended; the invitation can be accepted once it is reactivated.")
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise Conflict("You are already a member of this tenant.")
    Invitation.objects.filter(pk=invitation.pk).update(accepted_at=now, accepted_by=user, updated_at=now)
    membership = Membership.objects.create(tenant=tenant, user=user, role=invitation.role)
    audit_record(
        tenant=tenant,
        actor=actor,
        action=AuditLog.Action.INVITATION_ACCEPTED,
        target_type="invitation",
        target_id=str(invitation.pk),
        data={"email": invitation.email, "role": invitation.role, "user_id": user.pk},
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action=AuditLog.Action.MEMBER_ADDED,
        target_type="user",
        target_id=str(user.pk),
        data={"username": user.get_username(), "role": invitation.role, "invitation": str(invitation.pk)},
    )
    return membership
