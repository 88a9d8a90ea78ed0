"""Policy: the tenant's tool rules (allow / deny / require approval, for the tenant or one
agent), the default for tools without a rule, safe mode, the AI rules every agent follows, and
"simulate a tool": what the policy would decide for a call, and why, without running it.

The same services as `/api/settings/policy*`, `/api/settings/guardrails/safe-mode/*`,
`/api/settings/ai-rules` and `/api/settings/simulate/tool` (`simulate_tool_call`). Everyone
reads; members simulate (as in the API); admins change rules and safe mode.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException, NotFound, ValidationError

from apps.agents import selectors as agent_selectors
from apps.core.ids import parse_uuid
from apps.dashboard.access import member_required
from apps.dashboard.build_forms import actor_for, checked, error_status, form_errors, is_htmx
from apps.dashboard.nav import NavItem, nav_add
from apps.policy import selectors, services
from apps.policy.api.serializers import SafeModeEnterSerializer, SimulateSerializer, ToolRuleSerializer
from apps.policy.models import Action
from apps.policy.simulation import simulate_tool_call
from apps.tenancy.models import Role
from apps.tools import rules
from apps.tools import selectors as tool_selectors
from apps.tools.api.serializers import AiRuleSerializer

nav_add("Build", NavItem("Policy", "policy", "policy"))

PAGE = "dashboard/policy/page.html"


def _agent(tenant, name: str | None):
    """An agent named in a rule form, as the API finds it (an unknown name is a field error)."""
    if not name:
        return None
    agent = agent_selectors.agent_get_by_name(tenant=tenant, name=name)
    if agent is None:
        raise ValidationError({"agent": ["No such agent."]})
    return agent


def _tool_names(tenant) -> list[str]:
    return sorted(
        tool["name"]
        for entry in tool_selectors.plugin_list(tenant=tenant)
        if entry["enabled"]
        for tool in entry["tools"]
    )


def _label(action: str) -> str:
    return Action(action).label if action in Action.values else action


def _overview(tenant) -> dict:
    overview = selectors.policy_overview(tenant=tenant)
    overview["default_label"] = _label(overview["default_action"])
    for rule in overview["tools"]:
        rule["label"] = _label(rule["action"])
    return overview


def _context(request, **extra) -> dict:
    tenant = request.principal.tenant
    return {
        "overview": _overview(tenant),
        "actions": Action.choices,
        "agents": [a.name for a in agent_selectors.agent_list(tenant=tenant)],
        "tool_names": _tool_names(tenant),
        "ai_rules": list(rules.rule_list(tenant=tenant)),
        "can_simulate": request.principal.has_role(Role.MEMBER),
        "errors": {},
        "values": {},
        **extra,
    }


def _refused(request, exc: APIException, form: str, values: dict):
    """The page again, with the service's errors at the form that caused them."""
    context = _context(request, errors={form: form_errors(exc)}, values={form: values})
    return render(request, PAGE, context, status=error_status(exc))


@member_required
def policy_page(request):
    return render(request, PAGE, _context(request))


@require_POST
@member_required(role=Role.ADMIN)
def rule_set(request):
    tenant = request.principal.tenant
    values = {k: request.POST.get(k, "").strip() for k in ("tool", "action", "agent")}
    body = {k: v for k, v in values.items() if v}
    try:
        payload = ToolRuleSerializer(data=body)
        if not payload.is_valid():
            raise ValidationError(payload.errors)
        data = payload.validated_data
        services.tool_rule_set(
            tenant=tenant,
            actor=actor_for(request),
            tool_name=data["tool"],
            action=data["action"],
            agent=_agent(tenant, data.get("agent")),
        )
    except APIException as exc:
        return _refused(request, exc, "rule", values)
    who = f"agent {values['agent']}" if values["agent"] else "the tenant"
    messages.success(request, f"Rule saved: {values['tool']} is {values['action'].replace('_', ' ')} for {who}.")
    return redirect("dashboard:policy")


@require_POST
@member_required(role=Role.ADMIN)
def rule_delete(request, tool_name: str):
    tenant = request.principal.tenant
    try:
        agent = _agent(tenant, request.POST.get("agent") or None)
    except ValidationError as exc:
        raise Http404("No such rule.") from exc
    if not services.tool_rule_delete(tenant=tenant, actor=actor_for(request), tool_name=tool_name, agent=agent):
        raise Http404("No such rule.")
    messages.success(request, f"Rule for {tool_name} removed: the default applies again.")
    return redirect("dashboard:policy")


@require_POST
@member_required(role=Role.ADMIN)
def default_set(request):
    action = request.POST.get("default_action", "")
    try:
        services.policy_set_default(tenant=request.principal.tenant, actor=actor_for(request), action=action)
    except APIException as exc:
        return _refused(request, exc, "default", {"default_action": action})
    messages.success(request, f"Tools without a rule now: {action.replace('_', ' ')}.")
    return redirect("dashboard:policy")


@require_POST
@member_required(role=Role.ADMIN)
def safe_mode(request):
    tenant, actor = request.principal.tenant, actor_for(request)
    if not checked(request.POST, "enter"):
        services.safe_mode_exit(tenant=tenant, actor=actor)
        messages.success(request, "Safe mode is off: tools follow the rules again.")
        return redirect("dashboard:policy")
    values = {"reason": request.POST.get("reason", "").strip()}
    try:
        payload = SafeModeEnterSerializer(data=values)
        if not payload.is_valid():
            raise ValidationError(payload.errors)
        services.safe_mode_enter(tenant=tenant, actor=actor, reason=payload.validated_data["reason"])
    except APIException as exc:
        return _refused(request, exc, "safe", values)
    messages.success(request, "Safe mode is on: every write and external tool is denied.")
    return redirect("dashboard:policy")


@require_POST
@member_required(role=Role.MEMBER)
def simulate(request):
    values = {"tool": request.POST.get("tool", "").strip(), "args": request.POST.get("args", "").strip()}
    result, errors = None, {}
    try:
        try:
            args = json.loads(values["args"]) if values["args"] else {}
        except json.JSONDecodeError as exc:
            raise ValidationError({"args": [f"Not JSON: {exc.msg} (line {exc.lineno})."]}) from exc
        payload = SimulateSerializer(data={"tool": values["tool"], "args": args})
        if not payload.is_valid():
            raise ValidationError(payload.errors)
        result = simulate_tool_call(
            tenant=request.principal.tenant,
            user=request.user,
            tool_name=payload.validated_data["tool"],
            arguments=payload.validated_data.get("args") or {},
        )
        result["policy"]["label"] = _label(result["policy"]["action"])
    except NotFound as exc:
        errors = {"tool": [str(exc.detail)]}
    except APIException as exc:
        errors = form_errors(exc)
    if is_htmx(request):
        # A partial answers 200 even for bad input, so htmx swaps the inline errors in.
        return render(request, "dashboard/policy/_simulation.html", {"result": result, "sim_errors": errors})
    context = _context(request, result=result, sim_errors=errors, values={"sim": values})
    return render(request, PAGE, context, status=400 if errors else 200)


@require_POST
@member_required(role=Role.ADMIN)
def ai_rule_create(request):
    values = {k: request.POST.get(k, "").strip() for k in ("text", "priority", "category")}
    body = {"text": values["text"], "enabled": True}
    if values["priority"]:
        body["priority"] = values["priority"]
    if values["category"]:
        body["category"] = values["category"]
    try:
        payload = AiRuleSerializer(data=body)
        if not payload.is_valid():
            raise ValidationError(payload.errors)
        rules.rule_create(tenant=request.principal.tenant, actor=actor_for(request), **payload.validated_data)
    except APIException as exc:
        return _refused(request, exc, "ai", values)
    messages.success(request, "AI rule added: every agent follows it from its next turn.")
    return redirect("dashboard:policy")


@require_POST
@member_required(role=Role.ADMIN)
def ai_rule_delete(request, rule_id: str):
    tenant = request.principal.tenant
    parsed = parse_uuid(rule_id)
    rule = rules.rule_list(tenant=tenant).filter(pk=parsed).first() if parsed else None
    if rule is None:
        raise Http404("No such rule.")
    rules.rule_delete(tenant=tenant, actor=actor_for(request), rule=rule)
    messages.success(request, "AI rule removed.")
    return redirect("dashboard:policy")
