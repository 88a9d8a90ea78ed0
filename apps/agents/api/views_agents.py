"""Agents and the roster of their models per role."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.agents import selectors, services
from apps.agents.api.serializers import (
    AgentSerializer,
    AgentWriteSerializer,
    ModelPolicySerializer,
    RosterAssignSerializer,
    RosterEntrySerializer,
)
from apps.agents.api.views import CONFLICT_RESPONSE, READ_VIEWER_WRITE_ADMIN
from apps.core.api.views import TenantAPIView, TenantViewSet
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.core.pagination import DefaultPagination
from apps.tenancy.models import Role


@extend_schema_view(
    list=extend_schema(summary="List agents", responses={200: AgentSerializer(many=True), **ERROR_RESPONSES}),
    retrieve=extend_schema(summary="One agent", responses={200: AgentSerializer, **ERROR_RESPONSES}),
    create=extend_schema(
        summary="Create an agent (admin)",
        description="Role models are refs `<provider>/<model>` from GET /api/models/available: `guide` answers "
        "by default, `specialist` complex requests, `vision` messages with images (unset: the guide).",
        request=AgentWriteSerializer,
        responses={
            201: AgentSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The name is taken, or `max_agents` is reached."),
            **ERROR_RESPONSES,
        },
    ),
    partial_update=extend_schema(
        summary="Change an agent (admin)",
        request=AgentWriteSerializer,
        responses={200: AgentSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    ),
    destroy=extend_schema(summary="Delete an agent (admin)", responses={204: None, **ERROR_RESPONSES}),
)
@extend_schema(tags=["agents"])
class AgentViewSet(TenantViewSet):
    """Agents: a system prompt, models per role, a model policy and tools. Admins write."""

    serializer_class = AgentSerializer
    required_roles = READ_VIEWER_WRITE_ADMIN
    id_label = "agent"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.agent_list(tenant=self.tenant)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(AgentSerializer(self.get_object()).data)

    def create(self, request):
        payload = AgentWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent = services.agent_create(tenant=self.tenant, actor=self.actor(), **self._resolved(payload.validated_data))
        agent = selectors.agent_get(tenant=self.tenant, agent_id=agent.pk)
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        agent = self.get_object()
        payload = AgentWriteSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        agent = services.agent_update(
            tenant=self.tenant, actor=self.actor(), agent=agent, **self._resolved(payload.validated_data)
        )
        return Response(AgentSerializer(agent).data)

    def destroy(self, request, pk=None):
        services.agent_delete(tenant=self.tenant, actor=self.actor(), agent=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        summary="An agent's model policy",
        responses={200: ModelPolicySerializer, **ERROR_RESPONSES},
    )
    @action(detail=True, methods=["get"], url_path="model-policy", url_name="model-policy")
    def model_policy(self, request, pk=None):
        return Response(ModelPolicySerializer(self.get_object().model_policy or {}).data)

    @extend_schema(
        methods=["PUT"],
        summary="Replace an agent's model policy (admin)",
        description="`require_tools` / `require_vision` drop models without the capability; `max_cost_usd` "
        "caps what one turn may cost (each call's estimate must fit in what is left); "
        "`preferred_models` are the fallbacks after the role's model. "
        "Keys left out take their defaults.",
        request=ModelPolicySerializer,
        responses={200: ModelPolicySerializer, **ERROR_RESPONSES},
    )
    @model_policy.mapping.put
    def set_model_policy(self, request, pk=None):
        agent = self.get_object()  # before validation: another tenant's id is a 404, not a 400
        payload = ModelPolicySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        agent = services.agent_set_model_policy(
            tenant=self.tenant, actor=self.actor(), agent=agent, policy=dict(payload.validated_data)
        )
        return Response(ModelPolicySerializer(agent.model_policy).data)

    def _resolved(self, data: dict) -> dict:
        return services.agent_refs_resolve(tenant=self.tenant, data=data)


# --- roster --------------------------------------------------------------------------------------


class RosterView(TenantAPIView):
    pagination_class = DefaultPagination  # also tells the schema the list is paginated

    @extend_schema(
        tags=["agents"],
        summary="Every agent with its model per role",
        description="`models`: what is assigned per role; `effective`: what each role uses (unset specialist "
        "and vision roles use the guide's model).",
        responses={200: RosterEntrySerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.agent_list(tenant=self.tenant), request, view=self)
        entries = [selectors.roster_entry(agent) for agent in page]
        return paginator.get_paginated_response(RosterEntrySerializer(entries, many=True).data)


class RosterModelView(TenantAPIView):
    required_roles = {"*": Role.ADMIN}

    @extend_schema(
        tags=["agents"],
        summary="Assign an agent's model for a role (admin)",
        description="`role`: guide, specialist or vision; `model`: a ref `<provider>/<model>` from "
        "GET /api/models/available, or null to clear the role (it then uses the guide's model).",
        request=RosterAssignSerializer,
        responses={200: RosterEntrySerializer, **ERROR_RESPONSES},
    )
    def put(self, request, name: str):
        agent = selectors.agent_get_by_name(tenant=self.tenant, name=name)
        if agent is None:
            raise Http404  # before validation: another tenant's name is a 404, not a 400
        payload = RosterAssignSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        ref = payload.validated_data["model"]
        model = services.model_ref_resolve(tenant=self.tenant, ref=ref, field="model") if ref else None
        agent = services.agent_set_role_model(
            tenant=self.tenant, actor=self.actor(), agent=agent, role=payload.validated_data["role"], model=model
        )
        return Response(RosterEntrySerializer(selectors.roster_entry(agent)).data)
