"""The operators' view of tenants, members, API keys and the audit log."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from apps.core.ratelimit import client_address
from apps.tenancy import services
from apps.tenancy.invitations import invitation_revoke
from apps.tenancy.models import ApiKey, AuditLog, Invitation, Membership, Role, Scope, Tenant
from apps.tenancy.principal import Actor

# The library registers its own (unused) APIKey model; ours is the one operators manage.
try:
    from rest_framework_api_key.models import APIKey as LibraryAPIKey

    admin.site.unregister(LibraryAPIKey)
except admin.sites.NotRegistered:
    pass


def admin_actor(request) -> Actor:
    """The operator acting in the admin, for the audit log (other apps' admins use it too)."""
    return Actor(
        user=request.user,
        label=f"admin:{request.user.get_username()}",
        ip=client_address(request),
        request_id=getattr(request, "request_id", ""),
    )


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "status", "member_count", "created_at", "suspended_at"]
    list_filter = ["status"]
    search_fields = ["slug", "name"]
    readonly_fields = ["id", "status", "suspended_at", "suspended_reason", "created_at", "updated_at"]
    inlines = [MembershipInline]
    # Suspending stops turns and sockets too, which belongs to conversations (above tenancy): its
    # admin re-registers this one with the suspend action (apps/conversations/admin.py).
    actions = ["reactivate"]

    @admin.display(description="Members")
    def member_count(self, obj) -> int:
        return Membership.objects.filter(tenant=obj).count()

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request, queryset):
        done = sum(services.tenant_reactivate(tenant=t, actor=admin_actor(request)) for t in queryset)
        self.message_user(request, f"Reactivated {done} tenant(s).", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__slug"]
    autocomplete_fields = ["user", "tenant"]


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, initial=[Scope.READ, Scope.WRITE], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "scopes", "role", "expiry_date"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "scopes", "role", "status", "created", "last_used_at", "expiry_date"]
    list_filter = ["revoked", "role", "tenant"]
    search_fields = ["name", "prefix", "tenant__slug"]
    readonly_fields = [
        "id",
        "prefix",
        "tenant",
        "scopes",
        "role",
        "created",
        "created_by",
        "last_used_at",
        "expiry_date",
        "revoked",
        "revoked_at",
    ]
    fields = [*readonly_fields[:1], "name", *readonly_fields[1:]]
    actions = ["revoke"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ApiKeyCreateForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    @admin.display(description="Status")
    def status(self, obj) -> str:
        if obj.revoked:
            return "revoked"
        return "expired" if obj.has_expired else "active"

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        created, plaintext = services.api_key_create(
            tenant=form.cleaned_data["tenant"],
            actor=admin_actor(request),
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            role=form.cleaned_data["role"] or Role.ADMIN,
            expires_at=form.cleaned_data.get("expiry_date"),
            created_by=request.user,
        )
        obj.pk = created.pk  # so the admin's redirect points at the saved key
        messages.warning(
            request,
            format_html("New API key (shown only now, copy it): <code>{}</code>", plaintext),
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        done = sum(services.api_key_revoke(tenant=k.tenant, actor=admin_actor(request), api_key=k) for k in queryset)
        self.message_user(request, f"Revoked {done} key(s).", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the audit trail keeps pointing at the key


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read and revoke; operators invite with `manage.py create_invitation` (the token is printed there)."""

    list_display = ["email", "tenant", "role", "status", "invited_by_label", "created_at", "expires_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["email", "tenant__slug"]
    readonly_fields = [f.name for f in Invitation._meta.fields if f.name != "token_hash"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    @admin.display(description="Status")
    def status(self, obj) -> str:
        return obj.status_at(timezone.now())

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke selected invitations")
    def revoke(self, request, queryset):
        done = sum(
            invitation_revoke(tenant=i.tenant, actor=admin_actor(request), actor_role=Role.OWNER, invitation=i)
            for i in queryset
        )
        self.message_user(request, f"Revoked {done} invitation(s).", messages.SUCCESS)


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "action", "actor_label", "target_type", "target_id", "ip"]
    list_filter = ["action", "tenant"]
    search_fields = ["actor_label", "target_id", "request_id"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
