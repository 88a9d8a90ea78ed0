"""The dashboard's pages. Each page module adds its own patterns here (docs/dashboard.md)."""

from __future__ import annotations

from django.urls import path

# tenantpages: imported for its nav_add calls (the Tenant section, in its order).
from apps.dashboard.views import audit, auth, home, invite, keys, members, tenantpages, usage  # noqa: F401

app_name = "dashboard"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.SignInView.as_view(), name="login"),
    path("logout/", auth.SignOutView.as_view(), name="logout"),
    path("account/password/", auth.password_change, name="password_change"),
    path("switch-tenant/", auth.switch_tenant, name="switch_tenant"),
    # Tenant: API keys, members and invitations, the audit log, usage; the invitation accept page.
    path("keys/", keys.keys, name="keys"),
    path("keys/<uuid:key_id>/revoke/", keys.key_revoke, name="key_revoke"),
    path("members/", members.members, name="members"),
    path("members/<uuid:membership_id>/role/", members.member_role, name="member_role"),
    path("members/<uuid:membership_id>/remove/", members.member_remove, name="member_remove"),
    path("members/invitations/", members.invitation_create, name="invitation_create"),
    path("members/invitations/<uuid:invitation_id>/revoke/", members.invitation_revoke, name="invitation_revoke"),
    path("audit/", audit.audit, name="audit"),
    path("usage/", usage.usage, name="usage"),
    path("invite/<str:token>/", invite.invite, name="invite"),
]
