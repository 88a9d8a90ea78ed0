"""Providers: the tenant's model endpoints. Add (kind, base URL, key, models), test, list the
models the endpoint offers, change, enable/disable, delete.

The same path as `/api/providers`: the API's serializers parse the form, `provider_create` /
`provider_update` write (the base URL goes through the outbound policy there), and the test and
the live model list are the API's `provider_probe` / `provider_models_live`. Keys are write-only:
a page shows only the stored key's hint. As in the API, everyone reads and lists the endpoint's
models; admins add, change, test and delete.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException, ValidationError

from apps.agents import selectors, services
from apps.agents.api.serializers import ProviderCreateSerializer, ProviderUpdateSerializer
from apps.agents.models import ProviderKind
from apps.agents.providers.base import ProviderError
from apps.core.errors import Conflict
from apps.core.ids import parse_uuid
from apps.dashboard.access import member_required
from apps.dashboard.build_forms import actor_for, checked, error_status, form_errors, is_htmx
from apps.dashboard.nav import NavItem, nav_add
from apps.tenancy.models import Role

nav_add("Build", NavItem("Providers", "providers", "provider"))


def _provider_or_404(tenant, provider_id: str):
    parsed = parse_uuid(provider_id)
    provider = selectors.provider_get(tenant=tenant, provider_id=parsed) if parsed else None
    if provider is None:
        raise Http404("No such provider.")
    return provider


def _errors(exc: APIException) -> dict:
    return {"name": [str(exc.detail)]} if isinstance(exc, Conflict) else form_errors(exc)


def _rows(tenant) -> list[dict]:
    counts: dict = {}
    for model in selectors.catalog_model_list(tenant=tenant):
        counts[model.provider_id] = counts.get(model.provider_id, 0) + 1
    return [{"provider": p, "model_count": counts.get(p.pk, 0)} for p in selectors.provider_list(tenant=tenant)]


def _list_context(request, values: dict | None = None, errors: dict | None = None) -> dict:
    return {
        "rows": _rows(request.principal.tenant),
        "kinds": ProviderKind.choices,
        "values": values or {"kind": ProviderKind.OPENAI_COMPATIBLE},
        "errors": errors or {},
        "open_form": bool(errors),
    }


def _models_of(text: str) -> list[str] | None:
    """The form's model ids (commas or new lines); none given: the API's default (the price table's)."""
    ids = [part.strip() for line in (text or "").splitlines() for part in line.split(",") if part.strip()]
    return ids or None


@member_required
def provider_list(request):
    if request.method != "POST":
        return render(request, "dashboard/providers/list.html", _list_context(request))
    if not request.principal.has_role(Role.ADMIN):
        return render(request, "dashboard/forbidden.html", {"role_needed": Role.ADMIN.label}, status=403)
    post = request.POST
    # The key is never put back into the form: after an error it must be typed again.
    values = {k: post.get(k, "").strip() for k in ("kind", "name", "base_url", "models")}
    body = {"kind": values["kind"], "name": values["name"], "base_url": values["base_url"]}
    body["api_key"] = post.get("api_key", "")
    models = _models_of(values["models"])
    if models is not None:
        body["models"] = models
    try:
        payload = ProviderCreateSerializer(data=body)
        if not payload.is_valid():
            raise ValidationError(payload.errors)
        data = dict(payload.validated_data)
        data.pop("platform", None)
        provider = services.provider_create(tenant=request.principal.tenant, actor=actor_for(request), **data)
    except APIException as exc:
        context = _list_context(request, values, _errors(exc))
        return render(request, "dashboard/providers/list.html", context, status=error_status(exc))
    messages.success(request, f"Provider {provider.name} added. Test it to check the endpoint and key.")
    return redirect("dashboard:provider_detail", provider_id=provider.pk)


@member_required
def provider_detail(request, provider_id: str):
    tenant = request.principal.tenant
    provider = _provider_or_404(tenant, provider_id)
    errors: dict = {}
    status = 200
    if request.method == "POST":
        if not request.principal.has_role(Role.ADMIN):
            return render(request, "dashboard/forbidden.html", {"role_needed": Role.ADMIN.label}, status=403)
        body: dict = {"name": request.POST.get("name", "").strip(), "enabled": checked(request.POST, "enabled")}
        if provider.platform_id is None:
            body["base_url"] = request.POST.get("base_url", "").strip()
            if request.POST.get("api_key", "").strip():
                body["api_key"] = request.POST["api_key"]
        try:
            payload = ProviderUpdateSerializer(data=body)
            if not payload.is_valid():
                raise ValidationError(payload.errors)
            provider = services.provider_update(
                tenant=tenant, actor=actor_for(request), provider=provider, **payload.validated_data
            )
        except APIException as exc:
            errors, status = _errors(exc), error_status(exc)
        else:
            messages.success(request, f"Provider {provider.name} saved.")
            return redirect("dashboard:provider_detail", provider_id=provider.pk)
    context = {
        "provider": provider,
        "catalog": list(selectors.catalog_model_list(tenant=tenant, provider=provider)),
        "errors": errors,
        "values": request.POST if errors else None,
    }
    return render(request, "dashboard/providers/detail.html", context, status=status)


@require_POST
@member_required(role=Role.ADMIN)
def provider_test(request, provider_id: str):
    provider = _provider_or_404(request.principal.tenant, provider_id)
    result = selectors.provider_probe(provider=provider)
    context = {"provider": provider, "result": result}
    if is_htmx(request):
        return render(request, "dashboard/providers/_test_result.html", context)
    if result["reachable"]:
        messages.success(request, f"{provider.name} answered in {result['latency_ms']:.0f} ms.")
    else:
        messages.error(request, f"{provider.name} is not reachable: {result['error']}")
    return redirect("dashboard:provider_detail", provider_id=provider.pk)


@member_required
def provider_models(request, provider_id: str):
    provider = _provider_or_404(request.principal.tenant, provider_id)
    try:
        listing, error = selectors.provider_models_live(tenant=request.principal.tenant, provider=provider), ""
    except ProviderError as exc:
        listing, error = None, str(exc)
    context = {"provider": provider, "listing": listing, "error": error}
    if is_htmx(request):
        return render(request, "dashboard/providers/_models.html", context)
    return render(request, "dashboard/providers/models.html", context)


@require_POST
@member_required(role=Role.ADMIN)
def provider_toggle(request, provider_id: str):
    provider = _provider_or_404(request.principal.tenant, provider_id)
    provider = services.provider_update(
        tenant=request.principal.tenant, actor=actor_for(request), provider=provider, enabled=not provider.enabled
    )
    messages.success(request, f"Provider {provider.name} {'enabled' if provider.enabled else 'disabled'}.")
    return redirect("dashboard:providers")


@require_POST
@member_required(role=Role.ADMIN)
def provider_delete(request, provider_id: str):
    provider = _provider_or_404(request.principal.tenant, provider_id)
    services.provider_delete(tenant=request.principal.tenant, actor=actor_for(request), provider=provider)
    messages.success(request, f"Provider {provider.name} deleted, with its catalog models.")
    return redirect("dashboard:providers")
