"""The audit log (`/audit/`): newest first, filtered by action, actor and a range of UTC days.
Admins, as `GET /api/audit/log`; the same selector answers both."""

from __future__ import annotations

import datetime as dt

from django.core.paginator import Paginator
from django.shortcuts import render

from apps.dashboard.access import member_required
from apps.dashboard.nav import NavItem, nav_add
from apps.tenancy import selectors
from apps.tenancy.models import Role

nav_add("Tenant", NavItem("Audit log", "audit", "list", role=Role.ADMIN))


PAGE_SIZE = 50


def _day(raw: str, errors: dict, field: str) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors[field] = ["Enter a date as YYYY-MM-DD."]
        return None


@member_required(role=Role.ADMIN)
def audit(request):
    tenant = request.principal.tenant
    params = request.GET
    errors: dict[str, list[str]] = {}
    filters = {
        "action": params.get("action", "").strip()[:64],
        "actor": params.get("actor", "").strip()[:200],
        "from": params.get("from", "").strip(),
        "to": params.get("to", "").strip(),
    }
    first = _day(filters["from"], errors, "from")
    last = _day(filters["to"], errors, "to")
    if first and last and last < first:
        errors["to"] = ["The last day comes before the first."]
    # Whole UTC days: `to` includes its day, so the range ends at the next midnight.
    since = dt.datetime.combine(first, dt.time.min, tzinfo=dt.UTC) if first and not errors else None
    until = (
        dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC) if last and not errors else None
    )
    entries = selectors.audit_log_list(
        tenant=tenant, action=filters["action"] or None, actor=filters["actor"] or None, since=since, until=until
    )
    page = Paginator(entries, PAGE_SIZE).get_page(params.get("page"))
    query = params.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "filters": filters,
        "errors": errors,
        "actions": sorted(
            {*selectors.audit_action_list(tenant=tenant), *([filters["action"]] if filters["action"] else [])}
        ),
        "query": query.urlencode(),
        "filtered": any(filters.values()),
    }
    return render(request, "dashboard/audit/index.html", context, status=400 if errors else 200)
