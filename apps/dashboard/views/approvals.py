"""The approvals inbox: `/approvals/`, the tenant's tool calls waiting for a human, live.

Reads with apps.policy.selectors (as `GET /api/approvals`); decides through
conversations.turns.services.turn_resume (as `POST /api/approvals/{id}/approve|deny`), which
checks the tenant's approval role (policy.services.approval_role, admin by default). The page's
list is a partial that static/dashboard/approvals.js refreshes when the tenant's `/ws` stream
says an approval was requested or resolved (and every few seconds while the socket is down).
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import PermissionDenied

from apps.conversations.turns.services import turn_resume
from apps.core.errors import Conflict
from apps.core.ratelimit import client_address
from apps.dashboard.access import member_required
from apps.dashboard.nav import NavItem, nav_add
from apps.dashboard.views.observatory import session_href
from apps.policy import selectors as policy_selectors
from apps.policy.services import approval_role
from apps.tenancy.models import Role

nav_add("Work", NavItem("Approvals", "approvals", "inbox"))

REASON_MAX = 2000


def _list_context(request, *, error: str = "") -> dict:
    tenant = request.principal.tenant
    needed = approval_role(tenant)
    pending = list(policy_selectors.approval_list(tenant=tenant).select_related("turn__session"))
    return {
        "pending": [{"approval": a, "session_url": session_href(a.turn.session_id)} for a in pending],
        "history": [
            {"approval": a, "session_url": session_href(a.turn.session_id)}
            for a in policy_selectors.approval_history(tenant=tenant)
        ],
        "can_decide": request.principal.has_role(needed),
        "approval_role": Role(needed).label,
        "list_error": error,
    }


@require_GET
@member_required
def approvals_page(request):
    return render(request, "dashboard/approvals/page.html", _list_context(request))


@require_GET
@member_required
def approvals_list(request):
    return render(request, "dashboard/approvals/_list.html", _list_context(request))


@require_POST
@member_required(role=Role.MEMBER)
def approval_decide(request, approval_id):
    principal = request.principal
    approval = policy_selectors.approval_get(tenant=principal.tenant, approval_id=approval_id)
    if approval is None:
        raise Http404("No such approval.")
    decision = request.POST.get("decision", "")
    reason = request.POST.get("reason", "").strip()
    htmx = bool(request.headers.get("HX-Request"))
    error = ""
    if decision not in ("approve", "deny"):
        error = "Choose approve or deny."
    elif len(reason) > REASON_MAX:
        error = f"The reason is too long (at most {REASON_MAX} characters)."
    else:
        try:
            turn_resume(
                tenant=principal.tenant,
                actor=principal.as_actor(ip=client_address(request), request_id=getattr(request, "request_id", "")),
                actor_role=principal.role,
                approval=approval,
                approve=decision == "approve",
                reason=reason,
            )
        except PermissionDenied as exc:
            if htmx:
                return JsonResponse({"error": "Forbidden", "message": str(exc.detail)}, status=403)
            needed = Role(approval_role(principal.tenant)).label
            return render(request, "dashboard/forbidden.html", {"role_needed": needed}, status=403)
        except Conflict as exc:
            error = str(exc.detail)
    done = "" if error else f"{'Approved' if decision == 'approve' else 'Denied'}: {approval.tool_name}."
    if htmx:
        response = render(request, "dashboard/approvals/_list.html", _list_context(request, error=error))
        if done:
            response["HX-Trigger"] = json.dumps({"toast": done})
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return redirect("dashboard:approvals")
