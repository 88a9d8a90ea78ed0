"""The cross-tenant isolation test.

Every route under /api/ is called, with every method it answers, using tenant A's owner key and
each of tenant B's object ids and names: every answer must be 404 (or 405), never B's data.
Routes without ids are read with A's key and must not mention any of B's ids. Routes are found
from the URLconf, so every route added later is probed without touching this test.
"""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from apps.core.models import TenantOwnedModel
from apps.tenancy.models import Role
from tests.factories import TenantFactory, populate_tenant

pytestmark = pytest.mark.django_db

PROBE_METHODS = ("get", "post", "put", "patch", "delete")


def _api_patterns(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _api_patterns(entry, route)
        elif route.lstrip("^").startswith("api/"):
            found.append((route, entry))
    return found


def _methods(callback) -> list[str]:
    actions = getattr(callback, "actions", None)
    if actions:  # a ViewSet route: exactly the methods mapped to actions
        return [m for m in PROBE_METHODS if m in actions]
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        return ["get"]
    return [m for m in PROBE_METHODS if hasattr(view_class, m)]


def probe_routes(client, routes, b_values, *, leak_min_chars: int = 7) -> tuple[int, list[str]]:
    """Tenant A's `client` against each route with tenant B's values: every route with a path
    parameter must answer 404 (or 405) for each value and method; a GET of a route without one
    must not mention any value of `leak_min_chars` or more characters (shorter ones can occur by
    chance). Returns (probes made, failures)."""
    probes, failures = 0, []
    for route, pattern in routes:
        assert pattern.name, f"API route {route} needs a name so it can be probed"
        kwarg_names = list(pattern.pattern.regex.groupindex)
        methods = _methods(pattern.callback)
        if not kwarg_names:
            if "get" in methods:
                probes += 1
                text = client.get(reverse(pattern.name)).content.decode(errors="replace")
                leaked = [v for v in b_values if len(v) >= leak_min_chars and v in text]
                if leaked:
                    failures.append(f"GET {route}: response mentions tenant B's {leaked}")
            continue
        for value in b_values:
            url = reverse(pattern.name, kwargs=dict.fromkeys(kwarg_names, value))
            for method in methods:
                probes += 1
                response = client.generic(method.upper(), url, data=json.dumps({}), content_type="application/json")
                if response.status_code not in (404, 405):
                    failures.append(f"{method.upper()} {url} -> {response.status_code} {response.content[:200]!r}")
    return probes, failures


def _tenant_owned_models():
    return [
        model
        for model in apps.get_models()
        if issubclass(model, TenantOwnedModel)
        or any(
            f.name == "tenant" and f.is_relation and f.related_model.__name__ == "Tenant" for f in model._meta.fields
        )
    ]


def test_every_tenant_owned_model_is_populated_for_the_probe():
    tenant_b = TenantFactory()
    populate_tenant(tenant_b)
    missing = [m.__name__ for m in _tenant_owned_models() if not m.objects.filter(tenant=tenant_b).exists()]
    assert not missing, f"add these to tests.factories.populate_tenant so the isolation test covers them: {missing}"


def test_tenant_a_never_reaches_tenant_b(make_client, capsys):
    tenant_a, tenant_b = TenantFactory(), TenantFactory()
    populate_tenant(tenant_a)
    b_values = populate_tenant(tenant_b)
    client = make_client(tenant_a, role=Role.OWNER)

    routes = _api_patterns()
    assert routes, "no /api/ routes found"
    probes, failures = probe_routes(client, routes, b_values)

    with capsys.disabled():
        print(f"\n[isolation] {probes} cross-tenant probes over {len(routes)} API routes")
    assert not failures, "\n".join(failures)


def _dashboard_patterns() -> list[tuple[str, URLPattern]]:
    found = []
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace == "dashboard":
            found += [(str(p.pattern), p) for p in entry.url_patterns]
    return found


def test_tenant_a_never_reaches_tenant_b_in_the_dashboard(client, capsys):
    """The HTML pages too: A's owner, signed in, opens every dashboard URL with each of B's ids
    (GET and POST): a 404 (or 405) every time, and pages without ids never mention B's values."""
    from tests.factories import MembershipFactory

    tenant_a, tenant_b = TenantFactory(), TenantFactory()
    populate_tenant(tenant_a)
    b_values = populate_tenant(tenant_b)
    owner = MembershipFactory(tenant=tenant_a, role=Role.OWNER).user
    client.force_login(owner)

    routes = _dashboard_patterns()
    assert routes, "no dashboard routes found"
    probes, failures = 0, []
    for route, pattern in routes:
        kwarg_names = list(pattern.pattern.regex.groupindex)
        name = f"dashboard:{pattern.name}"
        if not kwarg_names:
            probes += 1
            text = client.get(reverse(name)).content.decode(errors="replace")
            leaked = [v for v in b_values if len(v) >= 7 and v in text]
            if leaked:
                failures.append(f"GET /{route}: page mentions tenant B's {leaked}")
            continue
        for value in b_values:
            try:
                url = reverse(name, kwargs=dict.fromkeys(kwarg_names, value))
            except NoReverseMatch:  # a value the route's converter refuses cannot reach it either
                continue
            for method in ("get", "post"):
                probes += 1
                response = getattr(client, method)(url)
                if response.status_code not in (404, 405):
                    failures.append(f"{method.upper()} {url} -> {response.status_code}")
    with capsys.disabled():
        print(f"\n[isolation] {probes} cross-tenant probes over {len(routes)} dashboard routes")
    assert not failures, "\n".join(failures)
