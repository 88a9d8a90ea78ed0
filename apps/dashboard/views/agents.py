"""Agents: list, create, edit (prompt, persona, models per role, model policy, tools, skills,
max steps), enable/disable, delete.

The same path as `POST/PATCH /api/agents`: the form's fields go through the API's
AgentWriteSerializer (types and ranges), `agent_refs_resolve` (model refs), then
`agent_create`/`agent_update`; skills through `skill_activate`. Everyone reads; admins write.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException, ValidationError

from apps.agents import selectors, services
from apps.agents.api.serializers import AgentWriteSerializer
from apps.core.errors import Conflict
from apps.core.ids import parse_uuid
from apps.dashboard.access import member_required
from apps.dashboard.build_forms import (
    actor_for,
    blank_to_none,
    checked,
    error_status,
    form_errors,
    is_htmx,
    render_form,
)
from apps.dashboard.nav import NavItem, nav_add
from apps.tenancy.models import Role
from apps.tools import selectors as tool_selectors
from apps.tools import skills as skill_services

nav_add("Build", NavItem("Agents", "agents", "agent"))

FORM_TEMPLATE = "dashboard/agents/form.html"


def _agent_or_404(tenant, agent_id: str):
    parsed = parse_uuid(agent_id)
    agent = selectors.agent_get(tenant=tenant, agent_id=parsed) if parsed else None
    if agent is None:
        raise Http404("No such agent.")
    return agent


def _active_skills(tenant, agent) -> set[str]:
    if agent is None:
        return set()
    skills = tool_selectors.skill_list(tenant=tenant)
    return {s.name for s in skills if any(link.agent_id == agent.pk for link in s.agent_links.all())}


def _tool_choices(tenant, current: list[str]) -> list[dict]:
    """Built-in tools and the tools of the tenant's enabled plugins; names already given that
    exist no more stay listed (checked) so saving does not drop them silently."""
    choices = []
    for entry in tool_selectors.plugin_list(tenant=tenant):
        if not entry["enabled"]:
            continue
        for tool in entry["tools"]:
            choices.append({"name": tool["name"], "description": tool["description"], "plugin": entry["name"]})
    known = {c["name"] for c in choices}
    choices += [{"name": n, "description": "Not available now.", "plugin": "?"} for n in current if n not in known]
    return choices


def _values_of(agent) -> dict:
    if agent is None:
        return {"max_steps": 10, "enabled": True, "enabled_tools": [], "preferred_models": []}
    policy = agent.model_policy or {}
    return {
        "name": agent.name,
        "description": agent.description,
        "system_prompt": agent.system_prompt,
        "persona": agent.persona,
        "guide_model": agent.guide_model.ref if agent.guide_model else "",
        "specialist_model": agent.specialist_model.ref if agent.specialist_model else "",
        "vision_model": agent.vision_model.ref if agent.vision_model else "",
        "max_steps": agent.max_steps,
        "temperature": "" if agent.temperature is None else agent.temperature,
        "max_output_tokens": agent.max_output_tokens or "",
        "enabled_tools": list(agent.enabled_tools or []),
        "enabled": agent.enabled,
        "require_tools": bool(policy.get("require_tools")),
        "require_vision": bool(policy.get("require_vision")),
        "max_cost_usd": "" if policy.get("max_cost_usd") is None else policy["max_cost_usd"],
        "preferred_models": list(policy.get("preferred_models") or []),
    }


def _values_posted(post) -> dict:
    return {
        "name": post.get("name", "").strip(),
        "description": post.get("description", ""),
        "system_prompt": post.get("system_prompt", ""),
        "persona": post.get("persona", ""),
        "guide_model": post.get("guide_model", ""),
        "specialist_model": post.get("specialist_model", ""),
        "vision_model": post.get("vision_model", ""),
        "max_steps": post.get("max_steps", "").strip(),
        "temperature": post.get("temperature", "").strip(),
        "max_output_tokens": post.get("max_output_tokens", "").strip(),
        "enabled_tools": post.getlist("enabled_tools"),
        "enabled": checked(post, "enabled"),
        "require_tools": checked(post, "require_tools"),
        "require_vision": checked(post, "require_vision"),
        "max_cost_usd": post.get("max_cost_usd", "").strip(),
        "preferred_models": post.getlist("preferred_models"),
        "skills": set(post.getlist("skills")),
    }


def _payload(values: dict) -> dict:
    """The form's values as the API's JSON body would carry them."""
    return {
        "name": values["name"],
        "description": values["description"],
        "system_prompt": values["system_prompt"],
        "persona": values["persona"],
        "guide_model": blank_to_none(values["guide_model"]),
        "specialist_model": blank_to_none(values["specialist_model"]),
        "vision_model": blank_to_none(values["vision_model"]),
        "max_steps": values["max_steps"] or 10,
        "temperature": blank_to_none(values["temperature"]),
        "max_output_tokens": blank_to_none(values["max_output_tokens"]),
        "enabled_tools": values["enabled_tools"],
        "enabled": values["enabled"],
        "model_policy": {
            "require_tools": values["require_tools"],
            "require_vision": values["require_vision"],
            "max_cost_usd": blank_to_none(values["max_cost_usd"]),
            "preferred_models": values["preferred_models"],
        },
    }


def _form_context(request, agent, values: dict, active_skills: set[str]) -> dict:
    tenant = request.principal.tenant
    return {
        "agent": agent,
        "values": values,
        "models": [m.ref for m in selectors.catalog_models_available(tenant=tenant)],
        "tools": _tool_choices(tenant, values.get("enabled_tools") or []),
        "skills": [
            {"name": s.name, "description": s.description, "enabled": s.enabled, "active": s.name in active_skills}
            for s in tool_selectors.skill_list(tenant=tenant)
        ],
        "can_edit": request.principal.has_role(Role.ADMIN),
    }


def _errors(exc: APIException) -> dict:
    # The only conflict an agent form can cause is its name being taken: say so at the name.
    return {"name": [str(exc.detail)]} if isinstance(exc, Conflict) else form_errors(exc)


def _save(request, agent, values: dict):
    """Create or change the agent and its skills, all or nothing; raises what the services raise."""
    tenant, actor = request.principal.tenant, actor_for(request)
    payload = AgentWriteSerializer(data=_payload(values))
    if not payload.is_valid():
        raise ValidationError(payload.errors)
    data = services.agent_refs_resolve(tenant=tenant, data=payload.validated_data)
    with transaction.atomic():
        if agent is None:
            agent = services.agent_create(tenant=tenant, actor=actor, **data)
        else:
            agent = services.agent_update(tenant=tenant, actor=actor, agent=agent, **data)
        before = _active_skills(tenant, agent)
        for name in sorted(before ^ values["skills"]):
            skill_services.skill_activate(
                tenant=tenant, actor=actor, name=name, agent=agent, active=name in values["skills"]
            )
    return agent


@member_required
def agent_list(request):
    agents = list(selectors.agent_list(tenant=request.principal.tenant))
    return render(request, "dashboard/agents/list.html", {"agents": agents})


@member_required(role=Role.ADMIN)
def agent_new(request):
    if request.method != "POST":
        return render_form(request, FORM_TEMPLATE, _form_context(request, None, _values_of(None), set()))
    values = _values_posted(request.POST)
    try:
        agent = _save(request, None, values)
    except APIException as exc:
        context = _form_context(request, None, values, values["skills"])
        return render_form(request, FORM_TEMPLATE, context, errors=_errors(exc), status=error_status(exc))
    messages.success(request, f"Agent {agent.name} created.")
    return redirect("dashboard:agent_detail", agent_id=agent.pk)


@member_required
def agent_detail(request, agent_id: str):
    tenant = request.principal.tenant
    agent = _agent_or_404(tenant, agent_id)
    if request.method != "POST":
        context = _form_context(request, agent, _values_of(agent), _active_skills(tenant, agent))
        return render_form(request, FORM_TEMPLATE, context)
    if not request.principal.has_role(Role.ADMIN):
        return render(request, "dashboard/forbidden.html", {"role_needed": Role.ADMIN.label}, status=403)
    values = _values_posted(request.POST)
    try:
        agent = _save(request, agent, values)
    except APIException as exc:
        context = _form_context(request, agent, values, values["skills"])
        return render_form(request, FORM_TEMPLATE, context, errors=_errors(exc), status=error_status(exc))
    messages.success(request, f"Agent {agent.name} saved.")
    return redirect("dashboard:agent_detail", agent_id=agent.pk)


@require_POST
@member_required(role=Role.ADMIN)
def agent_toggle(request, agent_id: str):
    tenant = request.principal.tenant
    agent = _agent_or_404(tenant, agent_id)
    agent = services.agent_update(tenant=tenant, actor=actor_for(request), agent=agent, enabled=not agent.enabled)
    if is_htmx(request):
        return render(request, "dashboard/agents/_row.html", {"agent": agent, "can_admin": True})
    messages.success(request, f"Agent {agent.name} {'enabled' if agent.enabled else 'disabled'}.")
    return redirect("dashboard:agents")


@require_POST
@member_required(role=Role.ADMIN)
def agent_delete(request, agent_id: str):
    tenant = request.principal.tenant
    agent = _agent_or_404(tenant, agent_id)
    services.agent_delete(tenant=tenant, actor=actor_for(request), agent=agent)
    messages.success(request, f"Agent {agent.name} deleted.")
    return redirect("dashboard:agents")
