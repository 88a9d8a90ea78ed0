from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.agents.models import Agent
from apps.core.api.views import TenantAPIView
from apps.core.openapi import ERROR_RESPONSES
from apps.core.pagination import DefaultPagination
from apps.policy import selectors, services
from apps.policy.api.serializers import (
    ApprovalSerializer,
    PolicyDefaultSerializer,
    SafeModeEnterSerializer,
    SimulateSerializer,
    ToolRuleSerializer,
)
from apps.policy.models import Approval
from apps.policy.simulation import simulate_tool_call
from apps.tenancy.models import Role

OVERVIEW = OpenApiTypes.OBJECT


def _agent(tenant, name: str | None):
    if not name:
        return None
    agent = Agent.objects.filter(tenant=tenant, name=name).first()
    if agent is None:
        raise ValidationError({"agent": ["No such agent."]})
    return agent


class PolicyView(TenantAPIView):
    required_roles = {"GET": Role.VIEWER, "POST": Role.ADMIN}

    @extend_schema(
        tags=["policy"],
        summary="The tool policy: defaults, rules per tool and per agent, safe mode",
        responses={200: OVERVIEW, **ERROR_RESPONSES},
    )
    def get(self, request):
        return Response(selectors.policy_overview(tenant=self.tenant))

    @extend_schema(
        tags=["policy"],
        summary="Set the default for tools without a rule (tenant, or one agent)",
        description="`default_allow: true|false` (allow or deny) or `default_action` "
        "(allow | deny | require_approval); `agent` names an agent to override the tenant for.",
        request=PolicyDefaultSerializer,
        responses={200: OVERVIEW, **ERROR_RESPONSES},
    )
    def post(self, request):
        payload = PolicyDefaultSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.policy_set_default(
            tenant=self.tenant,
            actor=self.actor(),
            action=payload.validated_data["default_action"],
            agent=_agent(self.tenant, payload.validated_data.get("agent")),
        )
        return Response(selectors.policy_overview(tenant=self.tenant))


class ToolRuleView(TenantAPIView):
    required_roles = {"POST": Role.ADMIN}

    @extend_schema(
        tags=["policy"],
        summary="Allow, deny or require approval for one tool (tenant, or one agent)",
        request=ToolRuleSerializer,
        responses={200: OVERVIEW, **ERROR_RESPONSES},
    )
    def post(self, request):
        payload = ToolRuleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        services.tool_rule_set(
            tenant=self.tenant,
            actor=self.actor(),
            tool_name=data["tool"],
            action=data["action"],
            agent=_agent(self.tenant, data.get("agent")),
        )
        return Response(selectors.policy_overview(tenant=self.tenant))


class ToolRuleDeleteView(TenantAPIView):
    required_roles = {"DELETE": Role.ADMIN}
    id_label = "tool"

    @extend_schema(
        tags=["policy"],
        summary="Remove a tool's rule (the default applies again)",
        parameters=[
            OpenApiParameter("agent", OpenApiTypes.STR, description="The agent's rule instead of the tenant's")
        ],
        responses={204: None, **ERROR_RESPONSES},
    )
    def delete(self, request, tool_name):
        agent = _agent(self.tenant, request.query_params.get("agent"))
        if not services.tool_rule_delete(tenant=self.tenant, actor=self.actor(), tool_name=tool_name, agent=agent):
            raise Http404
        return Response(status=204)


class SafeModeEnterView(TenantAPIView):
    required_roles = {"POST": Role.ADMIN}

    @extend_schema(
        tags=["policy"],
        summary="Enter safe mode: every write and external tool is denied until exit",
        request=SafeModeEnterSerializer,
        responses={200: OVERVIEW, **ERROR_RESPONSES},
    )
    def post(self, request):
        payload = SafeModeEnterSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.safe_mode_enter(tenant=self.tenant, actor=self.actor(), reason=payload.validated_data["reason"])
        return Response(selectors.tenant_safe_mode(tenant=self.tenant))


class SafeModeExitView(TenantAPIView):
    required_roles = {"POST": Role.ADMIN}

    @extend_schema(
        tags=["policy"], summary="Leave safe mode", request=None, responses={200: OVERVIEW, **ERROR_RESPONSES}
    )
    def post(self, request):
        services.safe_mode_exit(tenant=self.tenant, actor=self.actor())
        return Response(selectors.tenant_safe_mode(tenant=self.tenant))


class GuardrailsStatusView(TenantAPIView):
    @extend_schema(
        tags=["policy"],
        summary="Safe mode and the guardrails in force",
        responses={200: OVERVIEW, **ERROR_RESPONSES},
    )
    def get(self, request):
        return Response(
            {
                "safe_mode": selectors.tenant_safe_mode(tenant=self.tenant),
                "secret_redaction": True,
                "approval_role": services.approval_role(self.tenant),
            }
        )


class SimulateToolView(TenantAPIView):
    required_roles = {"POST": Role.MEMBER}

    @extend_schema(
        tags=["policy"],
        summary="What a tool call would do, without doing it",
        description="Answers the policy decision, the changes (files, diff), whether they are reversible, "
        "the rollback strategy and warnings. Write tools compute this with their dry run.",
        request=SimulateSerializer,
        responses={200: OVERVIEW, **ERROR_RESPONSES},
    )
    def post(self, request):
        payload = SimulateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        result = simulate_tool_call(
            tenant=self.tenant,
            user=self.principal.user,
            tool_name=payload.validated_data["tool"],
            arguments=payload.validated_data.get("args") or {},
        )
        return Response(result)


class ApprovalListView(TenantAPIView):
    pagination_class = DefaultPagination  # read by drf-spectacular too: documented as paginated

    @extend_schema(
        tags=["approvals"],
        summary="Approvals, pending ones by default, newest first (paginated)",
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=[*Approval.Status.values, "all"])],
        responses={200: ApprovalSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        status = request.query_params.get("status", Approval.Status.PENDING)
        if status not in (*Approval.Status.values, "all"):
            raise ValidationError({"status": [f"One of {', '.join(Approval.Status.values)}, all."]})
        approvals = selectors.approval_list(tenant=self.tenant, status=None if status == "all" else status)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(approvals, request, view=self)
        return paginator.get_paginated_response(ApprovalSerializer(page, many=True).data)


class ApprovalDetailView(TenantAPIView):
    id_label = "approval"

    @extend_schema(tags=["approvals"], summary="One approval", responses={200: ApprovalSerializer, **ERROR_RESPONSES})
    def get(self, request, approval_id):
        approval = selectors.approval_get(tenant=self.tenant, approval_id=self.uuid_or_404(approval_id))
        if approval is None:
            raise Http404
        return Response(ApprovalSerializer(approval).data)
