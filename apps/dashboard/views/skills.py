"""Skills, plugins and MCP servers: the tenant's skills (enable/disable for the tenant, remove),
the skills catalog (install), the plugins (enable/disable, their tools), and the tenant's own
HTTP MCP servers (register, discover their tools, remove).

The same services as `/api/skills`, `/api/plugins` and `/api/runtime/mcp`: the API's
PluginCreateSerializer parses the registration, `plugin_create` refuses stdio and checks the
URL against the outbound policy; header values are write-only (shown by name and hint).
Everyone reads; admins write.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException, ValidationError

from apps.core.errors import Conflict
from apps.core.ids import parse_uuid
from apps.dashboard.access import member_required
from apps.dashboard.build_forms import actor_for, error_status, form_errors
from apps.dashboard.nav import NavItem, nav_add
from apps.tenancy.models import Role
from apps.tools import selectors, services
from apps.tools import skills as skill_services
from apps.tools.api.serializers import PluginCreateSerializer
from apps.tools.models import Plugin

nav_add("Build", NavItem("Skills & plugins", "skills", "skill", also_active_under=("/plugins/",)))

TABS = ("skills", "catalog", "plugins")


def _skill_or_404(tenant, skill_id: str):
    parsed = parse_uuid(skill_id)
    skill = selectors.skill_list(tenant=tenant).filter(pk=parsed).first() if parsed else None
    if skill is None:
        raise Http404("No such skill.")
    return skill


def _plugin_row_or_404(tenant, name: str) -> Plugin:
    plugin = selectors.plugin_get(tenant=tenant, name=name)
    if plugin is None:
        raise Http404("No such plugin.")
    return plugin


def _tab_url(tab: str) -> str:
    return f"{reverse('dashboard:skills')}?tab={tab}"


def _one_line(exc: APIException) -> str:
    return " ".join(message for messages_ in form_errors(exc).values() for message in messages_)


def _headers_of(text: str) -> dict[str, str]:
    """`Name: value` per line; a line without a colon is a field error."""
    headers: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValidationError({"config_headers": [f"Line {number}: write `Name: value`."]})
        headers[name.strip()] = value.strip()
    return headers


def _page_context(request, tab: str, **extra) -> dict:
    tenant = request.principal.tenant
    context = {"tab": tab, "tabs": TABS, "errors": {}, "values": {}, **extra}
    if tab == "skills":
        context["skills"] = list(selectors.skill_list(tenant=tenant))
    elif tab == "catalog":
        context["catalog"] = skill_services.catalog_list(tenant=tenant)
    else:
        context["plugins"] = selectors.plugin_list(tenant=tenant)
    return context


@member_required
def skills_page(request):
    tab = request.GET.get("tab", "skills")
    if tab not in TABS:
        tab = "skills"
    return render(request, "dashboard/skills/page.html", _page_context(request, tab))


@require_POST
@member_required(role=Role.ADMIN)
def catalog_install(request):
    name = request.POST.get("name", "")
    try:
        skill = skill_services.skill_install(tenant=request.principal.tenant, actor=actor_for(request), name=name)
    except APIException as exc:
        messages.error(request, _one_line(exc))
    else:
        messages.success(request, f"Skill {skill.name} installed. Enable it for an agent on the agent's page.")
    return redirect(_tab_url("catalog"))


@require_POST
@member_required(role=Role.ADMIN)
def skill_toggle(request, skill_id: str):
    tenant = request.principal.tenant
    skill = skill_services.skill_toggle(tenant=tenant, actor=actor_for(request), skill=_skill_or_404(tenant, skill_id))
    messages.success(request, f"Skill {skill.name} {'enabled' if skill.enabled else 'disabled'} for the tenant.")
    return redirect("dashboard:skills")


@require_POST
@member_required(role=Role.ADMIN)
def skill_delete(request, skill_id: str):
    tenant = request.principal.tenant
    skill = _skill_or_404(tenant, skill_id)
    skill_services.skill_delete(tenant=tenant, actor=actor_for(request), skill=skill)
    messages.success(request, f"Skill {skill.name} removed from every agent.")
    return redirect("dashboard:skills")


@member_required(role=Role.ADMIN)
def mcp_register(request):
    if request.method != "POST":
        return render(request, "dashboard/skills/mcp_form.html", {"errors": {}, "values": {}})
    post = request.POST
    # Header values are never put back into the form: after an error they must be typed again.
    values = {k: post.get(k, "").strip() for k in ("name", "description", "url")}
    try:
        config = {"transport": "http", "url": values["url"]}
        headers = _headers_of(post.get("headers", ""))
        if headers:
            config["headers"] = headers
        payload = PluginCreateSerializer(
            data={"name": values["name"], "description": values["description"], "config": config}
        )
        if not payload.is_valid():
            raise ValidationError(payload.errors)
        plugin = services.plugin_create(
            tenant=request.principal.tenant, actor=actor_for(request), **payload.validated_data
        )
    except APIException as exc:
        errors = {"name": [str(exc.detail)]} if isinstance(exc, Conflict) else form_errors(exc)
        return render(
            request, "dashboard/skills/mcp_form.html", {"errors": errors, "values": values}, status=error_status(exc)
        )
    if plugin.status == Plugin.Status.ERROR:
        messages.warning(
            request, f"{plugin.name} is registered, but its tools could not be listed: {plugin.status_message}"
        )
    else:
        messages.success(request, f"{plugin.name} registered with {len(plugin.discovered_tools or [])} tools.")
    return redirect("dashboard:plugin_detail", name=plugin.name)


@member_required
def plugin_detail(request, name: str):
    entry = selectors.plugin_entry_by_name(tenant=request.principal.tenant, name=name)
    if entry is None:
        raise Http404("No such plugin.")
    return render(request, "dashboard/skills/plugin.html", {"plugin": entry})


@require_POST
@member_required(role=Role.ADMIN)
def plugin_toggle(request, name: str):
    tenant = request.principal.tenant
    if not selectors.plugin_is_offered(tenant=tenant, name=name):
        raise Http404("No such plugin.")
    try:
        plugin = services.plugin_toggle(tenant=tenant, actor=actor_for(request), name=name)
    except APIException as exc:
        messages.error(request, _one_line(exc))
    else:
        messages.success(request, f"Plugin {plugin.name} {'enabled' if plugin.enabled else 'disabled'}.")
    if request.POST.get("next") == "detail":
        return redirect("dashboard:plugin_detail", name=name)
    return redirect(_tab_url("plugins"))


@require_POST
@member_required(role=Role.ADMIN)
def plugin_discover(request, name: str):
    tenant = request.principal.tenant
    plugin = _plugin_row_or_404(tenant, name)
    if plugin.kind != Plugin.Kind.MCP:
        raise Http404("Not an MCP server.")
    try:
        plugin = services.plugin_discover(tenant=tenant, actor=actor_for(request), plugin=plugin)
    except APIException as exc:
        messages.error(request, _one_line(exc))
    else:
        if plugin.status == Plugin.Status.ERROR:
            messages.error(request, f"{plugin.name} could not be reached: {plugin.status_message}")
        else:
            messages.success(request, f"{plugin.name} lists {len(plugin.discovered_tools or [])} tools.")
    return redirect("dashboard:plugin_detail", name=plugin.name)


@require_POST
@member_required(role=Role.ADMIN)
def plugin_delete(request, name: str):
    tenant = request.principal.tenant
    plugin = _plugin_row_or_404(tenant, name)
    services.plugin_delete(tenant=tenant, actor=actor_for(request), plugin=plugin)
    messages.success(request, f"Plugin {plugin.name} removed.")
    return redirect(_tab_url("plugins"))
