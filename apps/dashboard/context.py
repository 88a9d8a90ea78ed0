"""Template context for every dashboard page: the frame (sidebar, tenant switcher, user)."""

from __future__ import annotations

from apps.dashboard.access import user_tenants
from apps.dashboard.nav import nav_for


def frame(request) -> dict:
    principal = getattr(request, "principal", None)
    if principal is None:
        return {}
    return {
        "principal": principal,
        "current_tenant": principal.tenant,
        "tenants": user_tenants(request.user),
        "nav": nav_for(principal, request.path),
        "role": principal.role,
        "can_write": principal.has_role("member"),
        "can_admin": principal.has_role("admin"),
    }
