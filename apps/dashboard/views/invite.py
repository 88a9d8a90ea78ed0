"""The invitation accept page (`/invite/<token>/`, the link the API's `accept_url` names).

Not a tenant page: the invitee may belong to no tenant yet, so it needs only a signed-in user.
Every token this account cannot use is the site's one 404 page, as the API answers one 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods
from rest_framework.exceptions import APIException, NotFound

from apps.core.ratelimit import client_address
from apps.dashboard.access import tenant_switch
from apps.tenancy import invitations
from apps.tenancy.models import Invitation
from apps.tenancy.principal import Actor


@require_http_methods(["GET", "POST"])
def invite(request, token: str):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    try:
        invitation = invitations.invitation_preview(token=token, user=request.user)
    except NotFound:
        raise Http404(invitations.NOT_FOUND_MESSAGE) from None
    context = {"invitation": invitation, "tenant": invitation.tenant, "problem": ""}
    if invitation.status_at(timezone.now()) == Invitation.Status.EXPIRED:
        context["problem"] = invitations.EXPIRED_MESSAGE
    if request.method != "POST":
        return render(request, "dashboard/invite/accept.html", context, status=409 if context["problem"] else 200)
    actor = Actor.of_user(request.user, ip=client_address(request), request_id=getattr(request, "request_id", ""))
    try:
        membership = invitations.invitation_accept(token=token, user=request.user, actor=actor)
    except NotFound:
        raise Http404(invitations.NOT_FOUND_MESSAGE) from None
    except APIException as exc:  # expired, tenant suspended, already a member: said on the card
        context["problem"] = str(exc.detail)
        return render(request, "dashboard/invite/accept.html", context, status=exc.status_code)
    tenant_switch(request, tenant_id=str(membership.tenant_id))
    messages.success(
        request, f"Welcome to {membership.tenant.name}: you joined as {membership.get_role_display().lower()}."
    )
    return redirect("dashboard:home")
