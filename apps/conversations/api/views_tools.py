"""`POST /api/plugins/{name}/execute/{tool}`: a tool run outside a turn, under the policy.

The route belongs to tools' API (docs/tools.md) but runs the policy check, and policy sits above
tools: the view lives here, above both, and hands `policy_decide` to tools' `run_tool_for_api`
(docs/architecture.md, "Import map"). Same URL, name and schema as before it moved.
"""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.agents.selectors import agent_get_by_name
from apps.core.api.views import TenantAPIView
from apps.core.openapi import ERROR_RESPONSES
from apps.policy.services import policy_decide
from apps.tenancy.models import Role
from apps.tools.api.serializers import ExecuteSerializer, ToolOutcomeSerializer
from apps.tools.api.views import CONFLICT_RESPONSE, plugin_tool_or_404
from apps.tools.registry import ToolContext, run_tool_for_api


class PluginExecuteView(TenantAPIView):
    required_roles = {"*": Role.ADMIN}

    @extend_schema(
        tags=["plugins"],
        summary="Run one of a plugin's tools (admin)",
        description="`tool` is the short name (`echo`) or the qualified one (`<plugin>__echo`); for `builtin`, "
        "the built-in's name. Runs through the same checks as a model's call (tenant and user from your key, "
        "never from the arguments); a failing tool answers 200 with `ok: false` and `error`.",
        request=ExecuteSerializer,
        responses={200: ToolOutcomeSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    )
    def post(self, request, name: str, tool: str):
        tool_obj = plugin_tool_or_404(tenant=self.tenant, name=name, tool=tool)
        payload = ExecuteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent = None
        if payload.validated_data.get("agent"):
            agent = agent_get_by_name(tenant=self.tenant, name=payload.validated_data["agent"])
            if agent is None:
                raise ValidationError({"agent": ["No agent with this name."]})
        context = ToolContext(tenant=self.tenant, agent=agent, user=self.principal.user)
        outcome = run_tool_for_api(
            tool=tool_obj, arguments=payload.validated_data["arguments"], context=context, decide=policy_decide
        )
        result = {key: value for key, value in asdict(outcome).items() if key != "data"}
        return Response(ToolOutcomeSerializer({"tool": tool_obj.name, **result}).data)
