"""API keys (`/keys/`): list, create (the key is shown once), revoke. Admins, as in the API."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException, ValidationError

from apps.dashboard.access import member_required
from apps.dashboard.nav import NavItem, nav_add
from apps.dashboard.tenantpages_forms import actor_of, field_errors, is_htmx, refusal, toast_header
from apps.tenancy import selectors, services
from apps.tenancy.api.serializers import ApiKeyCreateSerializer
from apps.tenancy.models import Role, Scope

nav_add("Tenant", NavItem("API keys", "keys", "key", role=Role.ADMIN))


DEFAULT_SCOPES = [Scope.READ, Scope.WRITE]  # the API's default when none are given


def _form_context(*, values=None, errors=None) -> dict:
    values = values or {}
    return {
        "scope_choices": Scope.choices,
        "values": {
            "name": values.get("name", ""),
            "scopes": values.get("scopes", DEFAULT_SCOPES),
            "expires_in_days": values.get("expires_in_days", ""),
            "monthly_budget_usd": values.get("monthly_budget_usd", ""),
        },
        "errors": errors or {},
    }


def _page(request, **extra) -> dict:
    return {"keys": selectors.api_key_list(tenant=request.principal.tenant), **_form_context(), **extra}


@member_required(role=Role.ADMIN)
def keys(request):
    if request.method == "POST":
        return _create(request)
    return render(request, "dashboard/keys/index.html", _page(request))


def _create(request):
    principal = request.principal
    values = {
        "name": request.POST.get("name", "").strip(),
        "scopes": request.POST.getlist("scopes"),
        "expires_in_days": request.POST.get("expires_in_days", "").strip(),
        "monthly_budget_usd": request.POST.get("monthly_budget_usd", "").strip(),
    }
    # The API's serializer, given what the form filled in (blank optional fields left out; no
    # scope ticked is sent as none, which it refuses, rather than taken as the default).
    payload = ApiKeyCreateSerializer(data={key: value for key, value in values.items() if value != ""})
    try:
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        api_key, plaintext = services.api_key_create(
            tenant=principal.tenant,
            actor=actor_of(request),
            name=data["name"],
            scopes=data.get("scopes"),
            role=principal.grant_ceiling,
            expires_at=data.get("expires_at"),
            created_by=principal.user,
            monthly_budget_usd=data.get("monthly_budget_usd"),
        )
    except ValidationError as exc:
        context = _page(request, **_form_context(values=values, errors=field_errors(exc)))
        if is_htmx(request):
            return render(request, "dashboard/keys/_create.html", context)
        return render(request, "dashboard/keys/index.html", context, status=400)
    # The plaintext is in this response only: never stored, never in a redirect or the session.
    context = _page(request, created=api_key, plaintext=plaintext)
    template = "dashboard/keys/_created.html" if is_htmx(request) else "dashboard/keys/index.html"
    response = render(request, template, context)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@member_required(role=Role.ADMIN)
def key_revoke(request, key_id: uuid.UUID):
    api_key = selectors.api_key_get(tenant=request.principal.tenant, key_id=key_id)
    if api_key is None:
        raise Http404("No such key.")
    try:
        services.api_key_revoke(tenant=request.principal.tenant, actor=actor_of(request), api_key=api_key)
    except APIException as exc:
        return refusal(request, exc, back="dashboard:keys")
    api_key.refresh_from_db()
    message = f"Key {api_key.prefix}… revoked. Programs using it now get 401."
    if is_htmx(request):
        return toast_header(render(request, "dashboard/keys/_row.html", {"key": api_key}), message)
    messages.success(request, message)
    return redirect("dashboard:keys")
