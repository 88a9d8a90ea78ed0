"""The chat page: the sessions list (search, new session, rename, archive, delete) and the
conversation, whose live part (posting, streaming, tools, approvals, stop, retry, edit and
resend, grades) is static/dashboard/chat.js talking to the REST API and `/ws`.

The writes here call the same services as the sessions API (apps/conversations/api/views.py).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import APIException

from apps.agents import selectors as agent_selectors
from apps.conversations import selectors, services
from apps.core.ids import parse_uuid
from apps.dashboard import chat_history
from apps.dashboard.access import member_required
from apps.dashboard.nav import NavItem, nav_add
from apps.policy.services import approval_role
from apps.tenancy.models import Role

nav_add("Work", NavItem("Chat", "chat", "chat"))  # /chat/<id>/ is under /chat/: highlighted too

UNTITLED = "New chat"


class NewSessionForm(forms.Form):
    agent = forms.ChoiceField(label="Agent")
    title = forms.CharField(label="Title", max_length=200, required=False)

    def __init__(self, *args, agents=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].choices = [(str(a.pk), a.name) for a in agents]


class RenameForm(forms.Form):
    title = forms.CharField(label="Title", max_length=200, required=False)


def _session_or_404(request, session_id):
    session = selectors.session_get(tenant=request.principal.tenant, session_id=session_id)
    if session is None:
        raise Http404("No such session.")
    return session


def _enabled_agents(tenant):
    return [a for a in agent_selectors.agent_list(tenant=tenant) if a.enabled]


def _sessions_context(request, current=None) -> dict:
    search = request.GET.get("q", "").strip()[:200]
    show_archived = request.GET.get("archived") == "1"
    sessions = selectors.session_list(tenant=request.principal.tenant, include_archived=show_archived, search=search)[
        :100
    ]
    return {"sessions": sessions, "search": search, "show_archived": show_archived, "current": current}


def _api_error_text(exc: APIException) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        return " ".join(str(v[0] if isinstance(v, list) else v) for v in detail.values())
    if isinstance(detail, list):
        return " ".join(str(v) for v in detail)
    return str(detail)


@require_GET
@member_required
def chat_index(request):
    """`/chat/`: the sessions and the form that starts one."""
    if request.headers.get("HX-Request"):
        # The list alone, with the open conversation (if any) still marked.
        current = parse_uuid(request.GET.get("current", ""))
        marked = selectors.session_get(tenant=request.principal.tenant, session_id=current) if current else None
        return render(request, "dashboard/chat/_sessions.html", _sessions_context(request, current=marked))
    agents = _enabled_agents(request.principal.tenant)
    context = {**_sessions_context(request), "form": NewSessionForm(agents=agents), "agents": agents}
    return render(request, "dashboard/chat/index.html", context)


@require_POST
@member_required(role=Role.MEMBER)
def chat_new(request):
    tenant = request.principal.tenant
    agents = _enabled_agents(tenant)
    form = NewSessionForm(request.POST, agents=agents)
    if form.is_valid():
        agent = next(a for a in agents if str(a.pk) == form.cleaned_data["agent"])
        try:
            session = services.session_create(
                tenant=tenant, agent=agent, created_by=request.user, title=form.cleaned_data["title"]
            )
        except APIException as exc:  # the tenant's max_sessions limit, or an agent gone meanwhile
            form.add_error(None, _api_error_text(exc))
        else:
            return redirect("dashboard:chat_session", session_id=session.pk)
    context = {**_sessions_context(request), "form": form, "agents": agents}
    return render(request, "dashboard/chat/index.html", context, status=400)


def _conversation_context(request, session, rename_form=None) -> dict:
    principal = request.principal
    exchanges, resume_after = chat_history.conversation(tenant=principal.tenant, session=session, user=request.user)
    return {
        **_sessions_context(request, current=session),
        "session": session,
        "title": session.title or UNTITLED,
        "exchanges": exchanges,
        "resume_after": resume_after,
        "can_approve": principal.has_role(approval_role(principal.tenant)),
        "approval_role": approval_role(principal.tenant),
        "rename_form": rename_form or RenameForm(initial={"title": session.title}),
        "forked_from": session.forked_from,
    }


@require_GET
@member_required
def chat_session(request, session_id):
    """`/chat/<id>/`: the conversation, drawn as it stands; chat.js goes live from there."""
    session = _session_or_404(request, session_id)
    return render(request, "dashboard/chat/session.html", _conversation_context(request, session))


@require_GET
@member_required
def chat_turn(request, session_id, turn_id):
    """One turn with the message it answers (a partial): the page asks for it when a turn it has
    not drawn starts (posted in another tab) and when a turn it streamed ends."""
    session = _session_or_404(request, session_id)
    turn = selectors.turn_get(tenant=request.principal.tenant, turn_id=turn_id)
    if turn is None or turn.session_id != session.pk:
        raise Http404("No such turn.")
    exchange = chat_history.turn_exchange(
        tenant=request.principal.tenant, session=session, user=request.user, turn=turn
    )
    context = {
        "session": session,
        "exchange": exchange,
        "can_approve": request.principal.has_role(approval_role(request.principal.tenant)),
    }
    return render(request, "dashboard/chat/_exchange.html", context)


@require_POST
@member_required(role=Role.MEMBER)
def chat_rename(request, session_id):
    session = _session_or_404(request, session_id)
    form = RenameForm(request.POST)
    if not form.is_valid():
        context = _conversation_context(request, session, rename_form=form)
        return render(request, "dashboard/chat/session.html", context, status=400)
    services.session_update(tenant=request.principal.tenant, session=session, title=form.cleaned_data["title"])
    messages.success(request, "Session renamed.")
    return redirect("dashboard:chat_session", session_id=session.pk)


@require_POST
@member_required(role=Role.MEMBER)
def chat_archive(request, session_id):
    session = _session_or_404(request, session_id)
    archive = not session.archived
    services.session_update(tenant=request.principal.tenant, session=session, archived=archive)
    messages.success(request, "Session archived." if archive else "Session restored from the archive.")
    return redirect("dashboard:chat_session", session_id=session.pk)


@require_POST
@member_required(role=Role.MEMBER)
def chat_delete(request, session_id):
    session = _session_or_404(request, session_id)
    title = session.title or UNTITLED
    services.session_delete(tenant=request.principal.tenant, session=session)
    messages.success(request, f"Deleted “{title}”.")
    return redirect("dashboard:chat")
