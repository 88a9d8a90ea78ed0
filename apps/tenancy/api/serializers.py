from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from apps.tenancy.models import ApiKey, AuditLog, Invitation, Membership, Role, Scope, Tenant


def monthly_budget_field(help_text: str) -> serializers.DecimalField:
    """A monthly budget in USD (the tenant's, a key's): cents, not negative, null for none."""
    return serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True, help_text=help_text
    )


class TenantSettingsSerializer(serializers.Serializer):
    """The knobs a tenant owner may set. Unknown keys are refused so typos do not pass silently."""

    monthly_budget_usd = monthly_budget_field("Spending cap per calendar month; null means no cap.")
    max_sessions = serializers.IntegerField(
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Most chat sessions the tenant may hold (archived ones count; deleting frees a slot). "
        "Creating one more answers 409. Null means no limit.",
    )
    max_agents = serializers.IntegerField(
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Most agents the tenant may have; creating one more answers 409. Null means no limit.",
    )
    cron_max_jobs = serializers.IntegerField(
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Most active or paused cron jobs (CRON_MAX_JOBS by default, 100); one more answers 409.",
    )
    cron_min_interval_seconds = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="Shortest interval (and cron gap) a job may have, in seconds (CRON_MIN_INTERVAL_SECONDS, 60).",
    )
    default_model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    approval_role = serializers.ChoiceField(
        choices=[Role.MEMBER, Role.ADMIN, Role.OWNER],
        required=False,
        help_text="The lowest role that may approve gated tool calls (admin by default).",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown setting."] for key in unknown})
        values = super().to_internal_value(data)
        if values.get("monthly_budget_usd") is not None:
            values["monthly_budget_usd"] = str(values["monthly_budget_usd"])
        return values


class TenantSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your effective role with these credentials.")
    scopes = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = ["id", "slug", "name", "status", "settings", "created_at", "role", "scopes"]
        read_only_fields = fields

    def get_role(self, obj) -> str:
        return self.context["principal"].role

    def get_scopes(self, obj) -> list[str]:
        return list(self.context["principal"].scopes)


class TenantUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    settings = TenantSettingsSerializer(required=False)


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    # A CharField: a member added by username has "" here, which `format: email` would refuse.
    email = serializers.CharField(source="user.email", read_only=True, help_text="Empty for a username-only member.")
    has_password = serializers.SerializerMethodField(help_text="False until an invited person sets a password.")

    class Meta:
        model = Membership
        fields = ["id", "user_id", "username", "email", "role", "has_password", "created_at"]
        read_only_fields = fields

    def get_has_password(self, obj) -> bool:
        return obj.user.has_usable_password()


class InvitationSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    invited_by = serializers.CharField(source="invited_by_label", read_only=True)

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "status",
            "invited_by",
            "created_at",
            "expires_at",
            "accepted_at",
            "revoked_at",
        ]
        read_only_fields = fields

    def get_status(self, obj) -> str:
        return obj.status_at(timezone.now())


class InvitationCreatedSerializer(InvitationSerializer):
    token = serializers.CharField(
        read_only=True,
        help_text="Shown only in this response. Send it to the invitee, who accepts it signed in with this email.",
    )
    accept_url = serializers.CharField(
        read_only=True,
        help_text="The dashboard page that accepts the token (`<PUBLIC_BASE_URL>/invite/<token>/`); "
        "send this link to the invitee. Shown only in this response.",
    )

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "token", "accept_url"]
        read_only_fields = fields


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class InvitationAcceptSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=200, trim_whitespace=True)


class InvitationAcceptedSerializer(serializers.Serializer):
    tenant_id = serializers.UUIDField(source="tenant.id")
    tenant_slug = serializers.CharField(source="tenant.slug")
    tenant_name = serializers.CharField(source="tenant.name")
    membership_id = serializers.UUIDField(source="id")
    role = serializers.CharField()


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiKeySerializer(serializers.ModelSerializer):
    created_at = serializers.DateTimeField(source="created", read_only=True)
    expires_at = serializers.DateTimeField(source="expiry_date", read_only=True, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None, allow_null=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "role",
            "status",
            "created_at",
            "created_by",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "monthly_budget_usd",
        ]
        read_only_fields = fields

    def get_status(self, obj) -> str:
        if obj.revoked:
            return "revoked"
        if obj.has_expired:
            return "expired"
        return "active"


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The key itself. Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices),
        required=False,
        allow_empty=False,
        help_text="read, write, admin. Default: read and write.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    monthly_budget_usd = monthly_budget_field(
        "Cap on the model spend of turns this key starts, per calendar month; null: no cap of its own."
    )
    expires_in_days = serializers.IntegerField(min_value=1, max_value=3650, required=False)

    def validate(self, attrs):
        if attrs.get("expires_at") and attrs.get("expires_in_days"):
            raise serializers.ValidationError({"expires_at": ["Give expires_at or expires_in_days, not both."]})
        if attrs.get("expires_in_days"):
            attrs["expires_at"] = timezone.now() + timedelta(days=attrs.pop("expires_in_days"))
        return attrs


class AuditLogSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)
    # Apps record their own actions (`skill.created`, `ai_rule.created`, ...) beyond the model's
    # choices, so the schema promises a string, not the enum.
    action = serializers.CharField(read_only=True, help_text="What happened, e.g. `api_key.created`.")

    class Meta:
        model = AuditLog
        fields = ["id", "action", "actor", "target_type", "target_id", "data", "ip", "request_id", "created_at"]
        read_only_fields = fields


class ApiKeyUpdateSerializer(serializers.Serializer):
    """What an admin may change on an existing key (the key itself, scopes and role never change)."""

    monthly_budget_usd = monthly_budget_field(
        "Cap on the model spend of turns this key starts, per calendar month; null removes it."
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Cannot be changed."] for key in unknown})
        return super().to_internal_value(data)
