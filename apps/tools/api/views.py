"""Plugins and the MCP runtime."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.core.api.views import TenantAPIView
from apps.core.errors import Conflict
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.core.pagination import DefaultPagination
from apps.tenancy.models import Role
from apps.tools import definitions, selectors, services
from apps.tools import plugins as plugin_code
from apps.tools.api.serializers import (
    DisconnectSerializer,
    McpClientPageSerializer,
    McpClientSerializer,
    PluginCreateSerializer,
    PluginPageSerializer,
    PluginSerializer,
    PluginUpdateSerializer,
    ToggleSerializer,
)
from apps.tools.models import Plugin
from apps.tools.registry import PLUGIN_SEPARATOR, Tool, builtin_registry, qualified_name

READ_VIEWER_WRITE_ADMIN = {"GET": Role.VIEWER, "HEAD": Role.VIEWER, "OPTIONS": Role.VIEWER, "*": Role.ADMIN}
CONFLICT_RESPONSE = OpenApiResponse(ErrorSerializer, description="Conflicts with the current state (see `message`).")
PAGE_PARAMETERS = [OpenApiParameter("limit", OpenApiTypes.INT), OpenApiParameter("offset", OpenApiTypes.INT)]


def _page(view, items: list, serializer) -> Response:
    paginator = DefaultPagination()
    page = paginator.paginate_queryset(items, view.request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


def _plugin_or_404(tenant, name: str) -> Plugin:
    plugin = selectors.plugin_get(tenant=tenant, name=name)
    if plugin is None:
        raise Http404
    return plugin


class PluginListView(TenantAPIView):
    required_roles = READ_VIEWER_WRITE_ADMIN

    @extend_schema(
        tags=["plugins"],
        operation_id="plugins_list",
        summary="The tenant's plugins and their tools",
        description="`builtin` (always on), the Python plugins installed on the platform and the stdio MCP "
        "servers operators offer this tenant (both off until enabled with `PUT /api/plugins/{name}/toggle`), "
        "and the tenant's own HTTP MCP servers. Plugin tools are named `<plugin>__<tool>`; give an agent those "
        "names (or `<plugin>__*`) in `enabled_tools`. Paginated (`limit`, `offset`).",
        parameters=PAGE_PARAMETERS,
        responses={200: PluginPageSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        return _page(self, selectors.plugin_list(tenant=self.tenant), PluginSerializer)

    @extend_schema(
        tags=["plugins"],
        summary="Register an HTTP MCP server (admin)",
        description="Streamable HTTP only (`config.url`, which must pass the platform's outbound policy when "
        "connected). `config.headers` are stored encrypted and only ever shown by name and hint. A stdio "
        "config (`command`, ...) answers 400: stdio servers run on the platform's host, so operators register "
        "them and tenants enable them. With `discover` (default) the server is asked for its tools at once; "
        "a failure leaves the plugin in status `error` with the reason in `status_message`.",
        request=PluginCreateSerializer,
        responses={201: PluginSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    )
    def post(self, request):
        payload = PluginCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        plugin = services.plugin_create(tenant=self.tenant, actor=self.actor(), **payload.validated_data)
        return Response(PluginSerializer(selectors.plugin_entry(plugin)).data, status=status.HTTP_201_CREATED)


class PluginDetailView(TenantAPIView):
    required_roles = READ_VIEWER_WRITE_ADMIN

    @extend_schema(tags=["plugins"], summary="One plugin", responses={200: PluginSerializer, **ERROR_RESPONSES})
    def get(self, request, name: str):
        entry = selectors.plugin_entry_by_name(tenant=self.tenant, name=name)
        if entry is None:
            raise Http404
        return Response(PluginSerializer(entry).data)

    @extend_schema(
        tags=["plugins"],
        summary="Change an HTTP MCP server (admin)",
        description="Any of `description`, `config` (replaces the stored one) and headers (in `config.headers` "
        "or `secrets.headers`: replace the stored ones; absent: kept). Connections are renewed. Plugins the "
        "platform or an operator provides answer 409: enable or disable them instead.",
        request=PluginUpdateSerializer,
        responses={200: PluginSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    )
    def patch(self, request, name: str):
        plugin = _plugin_or_404(self.tenant, name)
        payload = PluginUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        plugin = services.plugin_update(tenant=self.tenant, actor=self.actor(), plugin=plugin, **payload.validated_data)
        return Response(PluginSerializer(selectors.plugin_entry(plugin)).data)

    @extend_schema(
        tags=["plugins"],
        summary="Remove a plugin (admin)",
        description="An HTTP MCP server's registration goes; the row of a Python plugin or an operator's stdio "
        "server goes (it is disabled again, and can be enabled again).",
        responses={204: None, **ERROR_RESPONSES},
    )
    def delete(self, request, name: str):
        services.plugin_delete(tenant=self.tenant, actor=self.actor(), plugin=_plugin_or_404(self.tenant, name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PluginToggleView(TenantAPIView):
    required_roles = {"*": Role.ADMIN}

    @extend_schema(
        tags=["plugins"],
        summary="Enable or disable a plugin for the tenant (admin)",
        description='`{"enabled": true|false}`, or no body to flip. Works for the Python plugins installed on '
        "the platform and the stdio MCP servers an operator grants this tenant (their tools are discovered on "
        "first enable) as for the tenant's own HTTP MCP servers. A disabled plugin's tools leave every agent at "
        "its next turn and its MCP connections close.",
        request=ToggleSerializer,
        responses={200: PluginSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    )
    def put(self, request, name: str):
        if not selectors.plugin_is_offered(tenant=self.tenant, name=name):
            raise Http404  # before validation: another tenant's name is a 404, not a 400
        payload = ToggleSerializer(data=request.data or {})
        payload.is_valid(raise_exception=True)
        plugin = services.plugin_toggle(
            tenant=self.tenant, actor=self.actor(), name=name, enabled=payload.validated_data.get("enabled")
        )
        return Response(PluginSerializer(selectors.plugin_entry(plugin)).data)


def plugin_tool_or_404(*, tenant, name: str, tool: str) -> Tool:
    """The tool `POST /api/plugins/{name}/execute/{tool}` runs (apps/conversations/api/views_tools.py):
    `tool` is the short name or the qualified one; for `builtin`, the built-in's name. Another
    tenant's plugin or an unknown tool is a 404; a listed plugin that is not enabled, a 409."""
    if name == plugin_code.BUILTIN_PLUGIN_NAME:
        found = builtin_registry.get(tool)
        if found is None:
            raise Http404
        return found
    wanted = tool if tool.startswith(f"{name}{PLUGIN_SEPARATOR}") else qualified_name(name, tool)
    plugin = selectors.plugin_get(tenant=tenant, name=name)
    if plugin is None:
        # Listed but never enabled: a Python plugin installed on the platform (its tools are
        # known) or an operator's definition granted to this tenant (not discovered yet).
        code = plugin_code.python_plugins().plugins.get(name)
        offered = code is not None and any(t.name == wanted for t in plugin_code.python_plugin_tools(code))
        if not offered and definitions.definition_for_tenant(tenant=tenant, name=name) is None:
            raise Http404
        raise Conflict(_disabled_message(name))
    found = next((t for t in plugin_code.plugin_tools(plugin) if t.name == wanted), None)
    if found is None:
        raise Http404
    if not plugin.enabled:
        raise Conflict(_disabled_message(name))
    if plugin.definition_id and not definitions.definition_granted(plugin.definition, tenant.pk):
        raise Conflict(f"The operator no longer grants '{name}' to this tenant.")
    return found


def _disabled_message(name: str) -> str:
    return f"The plugin '{name}' is disabled; enable it with PUT /api/plugins/{name}/toggle {{\"enabled\": true}}."


class McpRuntimeView(TenantAPIView):
    @extend_schema(
        tags=["plugins"],
        summary="The tenant's MCP clients and their state",
        description="Per MCP plugin: the last discovery (`status`, `status_message`, `tool_count`) and the "
        "connection this web process holds (connections are per process: workers keep their own). "
        "Paginated (`limit`, `offset`).",
        parameters=PAGE_PARAMETERS,
        responses={200: McpClientPageSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        return _page(self, selectors.mcp_runtime(tenant=self.tenant), McpClientSerializer)


def _mcp_plugin_or_404(tenant, name: str) -> Plugin:
    plugin = _plugin_or_404(tenant, name)
    if plugin.kind != Plugin.Kind.MCP:
        raise Http404
    return plugin


class McpDiscoverView(TenantAPIView):
    required_roles = {"*": Role.ADMIN}

    @extend_schema(
        tags=["plugins"],
        summary="Ask an MCP server for its tools now (admin)",
        description="Opens a fresh connection, lists the tools and records them; answers the plugin with its "
        "new `status` (`error` and the reason when the server could not be reached). 409 for a stdio server "
        "that no operator definition (still granted to this tenant) provides.",
        request=None,
        responses={200: PluginSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    )
    def post(self, request, name: str):
        plugin = services.plugin_discover(
            tenant=self.tenant, actor=self.actor(), plugin=_mcp_plugin_or_404(self.tenant, name)
        )
        return Response(PluginSerializer(selectors.plugin_entry(plugin)).data)


class McpDisconnectView(TenantAPIView):
    required_roles = {"*": Role.ADMIN}

    @extend_schema(
        tags=["plugins"],
        summary="Close an MCP server's connections (admin)",
        description="This process's at once; every other process's the next time it would use it. The next "
        "call reconnects.",
        request=None,
        responses={200: DisconnectSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, name: str):
        plugin = _mcp_plugin_or_404(self.tenant, name)
        closed = services.plugin_disconnect(tenant=self.tenant, actor=self.actor(), plugin=plugin)
        return Response(DisconnectSerializer({"name": plugin.name, "disconnected": closed}).data)
