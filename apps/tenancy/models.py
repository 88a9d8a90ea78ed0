"""Tenants, who belongs to them, their API keys and their audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.crypto import get_random_string
from rest_framework_api_key.crypto import KeyGenerator
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from apps.core.ids import new_id
from apps.core.models import TenantOwnedModel, TimestampedModel


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Scope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    ADMIN = "admin", "Admin"


class Tenant(TimestampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    # Tenant-level knobs (monthly budget, limits, defaults). Validated by TenantSettingsSerializer.
    settings = models.JSONField(default=dict, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspended_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(TenantOwnedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user_per_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant_id} ({self.role})"


class Invitation(TenantOwnedModel):
    """An invitation to join a tenant with a role, for whoever signs in with `email`.

    Only a SHA-256 hash of the token is stored (the token has 256 random bits, so a plain hash
    is enough); the token itself is in the create response only. Single use: accepting,
    revoking or a newer invitation for the same address ends it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    email = models.EmailField(max_length=254, help_text="Lowercased.")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    invited_by_label = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "email"], name="invitation_tenant_email")]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant_id} as {self.role}"

    def status_at(self, now) -> str:
        if self.accepted_at is not None:
            return self.Status.ACCEPTED
        if self.revoked_at is not None:
            return self.Status.REVOKED
        if self.expires_at <= now:
            return self.Status.EXPIRED
        return self.Status.PENDING


class PrefixedKeyGenerator(KeyGenerator):
    """Keys look like `ap_AbCd1234.<40 random chars>`: recognisable in logs and secret scanners."""

    PREFIX = "ap_"

    def get_prefix(self) -> str:
        return self.PREFIX + get_random_string(self.prefix_length)


class ApiKeyManager(BaseAPIKeyManager):
    key_generator = PrefixedKeyGenerator(prefix_length=8, secret_key_length=40)

    def assign_key(self, obj: ApiKey) -> str:
        # The library makes "prefix.hash" the primary key; ours stays a UUID that fits URLs.
        key, prefix, hashed_key = self.key_generator.generate()
        obj.prefix = prefix
        obj.hashed_key = hashed_key
        return key


class ApiKey(AbstractAPIKey):
    """A tenant API key. Only a SHA-512 hash is stored; the key is shown once at creation."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys", db_index=True)
    scopes = models.JSONField(default=list, help_text="Any of read, write, admin.")
    # The most this key may ever do: its creator's role when it was made. Scopes narrow it further.
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ADMIN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Optional monthly cap on the model spend of turns this key starts (null: only the tenant's).
    monthly_budget_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    objects = ApiKeyManager()

    class Meta(AbstractAPIKey.Meta):
        ordering = ["-created"]
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditLog(models.Model):
    """Append-only: a database trigger refuses UPDATE (see the migration)."""

    class Action(models.TextChoices):
        TENANT_CREATED = "tenant.created"
        TENANT_UPDATED = "tenant.updated"
        TENANT_SUSPENDED = "tenant.suspended"
        TENANT_REACTIVATED = "tenant.reactivated"
        MEMBER_ADDED = "member.added"
        MEMBER_REMOVED = "member.removed"
        MEMBER_ROLE_CHANGED = "member.role_changed"
        KEY_CREATED = "api_key.created"
        KEY_REVOKED = "api_key.revoked"
        KEY_UPDATED = "api_key.updated"
        LOGIN_FAILED = "login.failed"
        PROVIDER_CREATED = "provider.created"
        PROVIDER_UPDATED = "provider.updated"
        PROVIDER_DELETED = "provider.deleted"
        PROVIDER_KEY_SET = "provider.key_set"
        PROVIDER_KEY_DELETED = "provider.key_deleted"
        PROVIDER_BREAKER_RESET = "provider.breaker_reset"
        AGENT_CREATED = "agent.created"
        AGENT_UPDATED = "agent.updated"
        AGENT_DELETED = "agent.deleted"
        INVITATION_CREATED = "invitation.created"
        INVITATION_ACCEPTED = "invitation.accepted"
        INVITATION_REVOKED = "invitation.revoked"
        INVITATION_EXPIRED = "invitation.expired"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    # Null for events that belong to no tenant (a failed login with an unknown username).
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=64, choices=Action.choices, db_index=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=200, blank=True, help_text="Who acted, kept after they are deleted.")
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=128, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_recent")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_label}"
