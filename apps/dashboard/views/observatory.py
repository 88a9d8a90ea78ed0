"""The turn observatory: `/turns/<id>/`, reached from each answer on the chat page.

Reads what the turn core recorded (apps/conversations/turns): the context snapshot
(`Turn.context_snapshot`), the router's decision (`model_selection`), usage and cost, the
timings (`metadata.timings`), tool calls and approvals; the same selectors as the API's
`/api/turns/{id}`, `/context`, `/tools`, `/model-selection` and `/api/audit/policy/{id}`.
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from apps.conversations import selectors as conversation_selectors
from apps.dashboard.access import member_required
from apps.dashboard.observatory_timeline import duration_text, waterfall
from apps.policy import selectors as policy_selectors


def session_href(session_id) -> str:
    """The chat page of a session."""
    return reverse("dashboard:chat_session", args=[session_id])


@require_GET
@member_required
def turn_detail(request, turn_id):
    tenant = request.principal.tenant
    turn = conversation_selectors.turn_get(tenant=tenant, turn_id=turn_id)
    if turn is None:
        raise Http404("No such turn.")
    tool_calls = list(conversation_selectors.tool_call_list(tenant=tenant, turn=turn))
    approvals = list(policy_selectors.approval_list(tenant=tenant, status=None, turn=turn))
    snapshot = turn.context_snapshot or {}
    usage = turn.usage or {}
    context = {
        "turn": turn,
        "session_url": session_href(turn.session_id),
        "snapshot": snapshot,
        "selection": turn.model_selection or {},
        "tool_calls": [
            {"call": call, "duration": duration_text(call.duration_ms) if call.duration_ms is not None else "—"}
            for call in tool_calls
        ],
        "approvals": approvals,
        "feedback": list(conversation_selectors.feedback_list(tenant=tenant, turn=turn)[:20]),
        "usage": {
            "input": usage.get("input_tokens"),
            "output": usage.get("output_tokens"),
            "total": (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0) if usage else None,
            "estimated_input": snapshot.get("estimated_input_tokens"),
        },
        "rules_included": sum(1 for rule in snapshot.get("rules", []) if rule.get("included")),
        "skills_included": sum(1 for skill in snapshot.get("skills", []) if skill.get("included")),
        "timeline": waterfall(turn=turn, tool_calls=tool_calls, approvals=approvals),
        "duration": duration_text(turn.duration_ms) if turn.duration_ms is not None else None,
    }
    return render(request, "dashboard/observatory/turn.html", context)
