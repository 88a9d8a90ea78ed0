"""Role checks: viewer reads; member chats; admin manages; owner manages members and settings."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.tenancy.models import Role
from apps.tenancy.principal import Principal


class IsTenantMember(BasePermission):
    """Authenticated as someone in an active tenant, with the role the view asks for.

    Views declare `required_roles = {"GET": "admin", ...}`; without it, reading needs viewer
    and writing needs member.
    """

    message = "Your role in this tenant does not allow this action."

    def has_permission(self, request, view) -> bool:
        principal = request.auth
        if not isinstance(principal, Principal):
            return False
        needed = required_role(view, request.method)
        if principal.has_role(needed):
            return True
        self.message = f"This action needs the {needed} role; your key or membership has {principal.role}."
        return False


def required_role(view, method: str) -> str:
    roles = getattr(view, "required_roles", None) or {}
    if method in roles:
        return roles[method]
    if "*" in roles:
        return roles["*"]
    return Role.VIEWER if method in SAFE_METHODS else Role.MEMBER
