"""Members and invitations (`/members/`): change roles, remove, invite by email, revoke.

Admins, with the API's rules (apps/tenancy/services.py, invitations.py): nobody grants or
removes a role above their own, only an owner touches owners, a tenant keeps an owner. Controls
a viewer of the page may not use are not drawn, and the services refuse them anyway.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException, ValidationError

from apps.core.urls_public import public_base_url
from apps.dashboard.access import member_required
from apps.dashboard.nav import NavItem, nav_add
from apps.dashboard.tenantpages_forms import actor_of, field_errors, is_htmx, refusal, toast_header
from apps.tenancy import invitations, selectors, services
from apps.tenancy.api.serializers import InvitationCreateSerializer, MemberRoleSerializer
from apps.tenancy.models import Invitation, Role
from apps.tenancy.principal import may_grant

nav_add("Tenant", NavItem("Members", "members", "users", role=Role.ADMIN))


def _grantable(principal) -> list[tuple[str, str]]:
    return [(value, label) for value, label in Role.choices if may_grant(principal.grant_ceiling, value)]


def _row(principal, membership) -> dict:
    # The API's rule, asked before drawing: may this admin change or remove this member at all?
    manageable = may_grant(principal.role, membership.role)
    return {"m": membership, "manageable": manageable, "is_me": membership.user_id == principal.user.pk}


def _member_rows(principal) -> list[dict]:
    return [_row(principal, m) for m in selectors.membership_list(tenant=principal.tenant)]


def _page(request, **extra) -> dict:
    principal = request.principal
    return {
        "members": _member_rows(principal),
        "pending": selectors.invitation_list(tenant=principal.tenant, status=Invitation.Status.PENDING),
        "roles": _grantable(principal),
        "invite_values": {"email": "", "role": Role.MEMBER},
        "invite_errors": {},
        **extra,
    }


@member_required(role=Role.ADMIN)
def members(request):
    return render(request, "dashboard/members/index.html", _page(request))


def _membership_or_404(request, membership_id):
    membership = selectors.membership_get(tenant=request.principal.tenant, membership_id=membership_id)
    if membership is None:
        raise Http404("No such member.")
    return membership


@require_POST
@member_required(role=Role.ADMIN)
def member_role(request, membership_id: uuid.UUID):
    principal = request.principal
    membership = _membership_or_404(request, membership_id)
    payload = MemberRoleSerializer(data={"role": request.POST.get("role", "")})
    try:
        payload.is_valid(raise_exception=True)
        updated = services.membership_change_role(
            tenant=principal.tenant,
            actor=actor_of(request),
            actor_role=principal.role,
            membership=membership,
            role=payload.validated_data["role"],
        )
    except APIException as exc:
        return refusal(request, exc, back="dashboard:members")
    message = f"{membership.user.get_username()} is now {updated.get_role_display().lower()}."
    if is_htmx(request):
        updated.user = membership.user
        context = {"row": _row(principal, updated), "roles": _grantable(principal)}
        return toast_header(render(request, "dashboard/members/_member_row.html", context), message)
    messages.success(request, message)
    return redirect("dashboard:members")


@require_POST
@member_required(role=Role.ADMIN)
def member_remove(request, membership_id: uuid.UUID):
    principal = request.principal
    membership = _membership_or_404(request, membership_id)
    username = membership.user.get_username()
    try:
        services.membership_remove(
            tenant=principal.tenant, actor=actor_of(request), actor_role=principal.role, membership=membership
        )
    except APIException as exc:
        return refusal(request, exc, back="dashboard:members")
    message = f"{username} was removed; their API keys were revoked."
    if membership.user_id == principal.user.pk:  # removed themselves: nothing here is theirs any more
        messages.success(request, message)
        if is_htmx(request):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = reverse("dashboard:home")
            return response
        return redirect("dashboard:home")
    if is_htmx(request):
        return toast_header(render(request, "dashboard/members/_removed.html"), message)
    messages.success(request, message)
    return redirect("dashboard:members")


@require_POST
@member_required(role=Role.ADMIN)
def invitation_create(request):
    principal = request.principal
    values = {"email": request.POST.get("email", "").strip(), "role": request.POST.get("role", Role.MEMBER)}
    payload = InvitationCreateSerializer(data=values)
    try:
        payload.is_valid(raise_exception=True)
        invitation, token = invitations.invitation_create(
            tenant=principal.tenant,
            actor=actor_of(request),
            actor_role=principal.grant_ceiling,
            email=payload.validated_data["email"],
            role=payload.validated_data["role"],
            invited_by=principal.user,
        )
    except APIException as exc:
        # Every refusal (bad address, a role above yours, already a member here) is shown at the form.
        errors = field_errors(exc) if isinstance(exc, ValidationError) else {"form": [str(exc.detail)]}
        context = _page(request, invite_values=values, invite_errors=errors)
        if is_htmx(request):
            return render(request, "dashboard/members/_invite.html", context)
        return render(request, "dashboard/members/index.html", context, status=exc.status_code)
    # The same answer whether or not the address has an account anywhere: nothing is looked up.
    link = invitations.invitation_link(token=token, base_url=public_base_url(request))
    context = _page(request, invited=invitation, invite_link=link)
    template = "dashboard/members/_invited.html" if is_htmx(request) else "dashboard/members/index.html"
    response = render(request, template, context)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@member_required(role=Role.ADMIN)
def invitation_revoke(request, invitation_id: uuid.UUID):
    principal = request.principal
    invitation = selectors.invitation_list(tenant=principal.tenant, status="all").filter(pk=invitation_id).first()
    if invitation is None:
        raise Http404("No such invitation.")
    try:
        invitations.invitation_revoke(
            tenant=principal.tenant, actor=actor_of(request), actor_role=principal.role, invitation=invitation
        )
    except APIException as exc:
        return refusal(request, exc, back="dashboard:members")
    message = f"The invitation for {invitation.email} was revoked; its link no longer works."
    if is_htmx(request):
        return toast_header(render(request, "dashboard/members/_removed.html"), message)
    messages.success(request, message)
    return redirect("dashboard:members")
