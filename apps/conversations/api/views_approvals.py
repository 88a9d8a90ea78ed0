"""Deciding approvals and auditing a turn's tool calls: the API of the turn's gated steps.

These views live with the turns (not in policy, which decides and never touches a turn): a
decision resumes the parked turn through turns/services.turn_resume, in one transaction with it.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from apps.conversations import selectors
from apps.conversations.api.serializers import ToolCallSerializer
from apps.conversations.models import ToolCall
from apps.conversations.turns.services import turn_resume
from apps.core.api.views import TenantAPIView
from apps.core.openapi import ERROR_RESPONSES
from apps.core.pagination import DefaultPagination
from apps.policy import selectors as policy_selectors
from apps.policy.api.serializers import ApprovalDecisionSerializer, ApprovalSerializer, SessionApprovalSerializer
from apps.policy.models import Approval
from apps.tenancy.models import Role

OVERVIEW = OpenApiTypes.OBJECT


class ApprovalMixin:
    id_label = "approval"

    def get_approval(self, approval_id: str) -> Approval:
        approval = policy_selectors.approval_get(tenant=self.tenant, approval_id=self.uuid_or_404(approval_id))
        if approval is None:
            raise Http404
        return approval

    def decide(self, approval: Approval, *, approve: bool, reason: str) -> Response:
        decided = turn_resume(
            tenant=self.tenant,
            actor=self.actor(),
            actor_role=self.principal.role,
            approval=approval,
            approve=approve,
            reason=reason,
        )
        return Response(ApprovalSerializer(decided).data)


class ApprovalApproveView(ApprovalMixin, TenantAPIView):
    required_roles = {"POST": Role.MEMBER}  # the approval role (admin by default) is checked by the service

    @extend_schema(
        tags=["approvals"],
        summary="Approve: the turn resumes and runs exactly this call, once",
        request=ApprovalDecisionSerializer,
        responses={200: ApprovalSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, approval_id):
        payload = ApprovalDecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return self.decide(self.get_approval(approval_id), approve=True, reason=payload.validated_data["reason"])


class ApprovalDenyView(ApprovalMixin, TenantAPIView):
    required_roles = {"POST": Role.MEMBER}

    @extend_schema(
        tags=["approvals"],
        summary="Deny: the model is told, and the turn goes on",
        request=ApprovalDecisionSerializer,
        responses={200: ApprovalSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, approval_id):
        payload = ApprovalDecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return self.decide(self.get_approval(approval_id), approve=False, reason=payload.validated_data["reason"])


class SessionApproveView(ApprovalMixin, TenantAPIView):
    required_roles = {"POST": Role.MEMBER}
    id_label = "session"

    @extend_schema(
        tags=["approvals"],
        summary="Approve or deny a session's waiting tool call",
        description="Name the call by `tool_call_id` (our id, as in approvals and `/api/turns/{id}/tools`), "
        "or by `turn_id` and `model_call_id` (the model's id, unique only within its turn).",
        request=SessionApprovalSerializer,
        responses={200: ApprovalSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, session_id):
        session = selectors.session_get(tenant=self.tenant, session_id=self.uuid_or_404(session_id))
        if session is None:
            raise Http404
        payload = SessionApprovalSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        approval = policy_selectors.approval_for_session_call(
            tenant=self.tenant,
            session_id=session.pk,
            tool_call_id=data.get("tool_call_id"),
            turn_id=data.get("turn_id"),
            model_call_id=data.get("model_call_id"),
        )
        if approval is None:
            raise NotFound("No approval for that tool call in this session.")
        return self.decide(approval, approve=data["action"] == "approve", reason=data.get("reason", ""))


class TurnAuditMixin:
    id_label = "turn"

    def tool_calls(self, turn_id: str):
        turn = selectors.turn_get(tenant=self.tenant, turn_id=self.uuid_or_404(turn_id))
        if turn is None:
            raise Http404
        return selectors.tool_call_list(tenant=self.tenant, turn=turn)


class PolicyAuditView(TurnAuditMixin, TenantAPIView):
    @extend_schema(
        tags=["policy"],
        summary="Each policy decision of a turn and why",
        responses={200: OVERVIEW, **ERROR_RESPONSES},
    )
    def get(self, request, turn_id):
        decisions = []
        for call in self.tool_calls(turn_id).select_related("approval"):
            approval = getattr(call, "approval", None) if _has_approval(call) else None
            decisions.append(
                {
                    "tool_call_id": str(call.pk),
                    "model_call_id": call.call_id,
                    "tool": call.name,
                    "step": call.step,
                    "action": call.policy.get("action"),
                    "policy_reason": call.policy.get("reason"),
                    "status": call.status,
                    "approval": ApprovalSerializer(approval).data if approval else None,
                }
            )
        return Response({"turn_id": turn_id, "decisions": decisions})


def _has_approval(call: ToolCall) -> bool:
    try:
        return call.approval is not None
    except Approval.DoesNotExist:
        return False


class ToolAuditView(TurnAuditMixin, TenantAPIView):
    pagination_class = DefaultPagination  # read by drf-spectacular too: documented as paginated

    @extend_schema(
        tags=["policy"],
        summary="A turn's tool calls with arguments, results and timings (paginated)",
        responses={200: ToolCallSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, turn_id):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(self.tool_calls(turn_id), request, view=self)
        return paginator.get_paginated_response(ToolCallSerializer(page, many=True).data)
