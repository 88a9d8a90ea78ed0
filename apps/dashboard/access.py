"""Who is looking at a dashboard page: the signed-in user, in the tenant chosen in the session.

The same resolution as the API's session authentication (apps.tenancy.authentication): the
tenant is the one the session names, else the user's first active membership. Role checks use
the API's ranks, so a viewer sees what the API lets a viewer read and posts nothing.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import render

from apps.tenancy import selectors as tenancy_selectors
from apps.tenancy.authentication import TenantSessionAuthentication
from apps.tenancy.models import Membership, Role, Tenant
from apps.tenancy.principal import Principal

SESSION_TENANT_KEY = TenantSessionAuthentication.SESSION_TENANT_KEY


def session_principal(request) -> Principal | None:
    """The Principal of a signed-in user in their current tenant; None without a membership."""
    if not request.user.is_authenticated:
        return None
    membership = tenancy_selectors.membership_for_session(
        user=request.user, preferred_tenant_id=request.session.get(SESSION_TENANT_KEY)
    )
    if membership is None:
        return None
    return Principal(
        tenant=membership.tenant, role=membership.role, user=request.user, scopes=("read", "write", "admin")
    )


def user_tenants(user) -> list[Tenant]:
    """The active tenants the user belongs to, for the tenant switcher."""
    return [
        m.tenant
        for m in Membership.objects.select_related("tenant")
        .filter(user=user, tenant__status=Tenant.Status.ACTIVE)
        .order_by("tenant__name")
    ]


def tenant_switch(request, *, tenant_id: str) -> Tenant:
    """Make `tenant_id` the session's tenant; a tenant the user is not in is a 404."""
    tenant = next((t for t in user_tenants(request.user) if str(t.pk) == tenant_id), None)
    if tenant is None:
        raise Http404("No such tenant.")
    request.session[SESSION_TENANT_KEY] = str(tenant.pk)
    return tenant


def member_required(view=None, *, role: str = Role.VIEWER):
    """A page for members of a tenant with at least `role`.

    Not signed in: the sign-in page, coming back here after. Signed in but in no tenant: a page
    that says so. A lower role: a 403 page naming the role needed. The view finds the Principal
    on `request.principal`.
    """

    def decorate(func):
        @wraps(func)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            principal = session_principal(request)
            if principal is None:
                return render(request, "dashboard/no_tenant.html", status=403)
            request.principal = principal
            if not principal.has_role(role):
                return render(request, "dashboard/forbidden.html", {"role_needed": Role(role).label}, status=403)
            return func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def can(principal: Principal, role: str) -> bool:
    """For templates: whether the viewer may do what needs `role` (buttons are hidden, not just refused)."""
    return principal.has_role(role)
