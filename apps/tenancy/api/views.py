from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api.views import TenantAPIView, TenantViewSet
from apps.core.openapi import ERROR_RESPONSES
from apps.core.pagination import DefaultPagination
from apps.core.params import query_datetime
from apps.tenancy import selectors, services
from apps.tenancy.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuditLogSerializer,
    MemberCreateSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    TenantSerializer,
    TenantUpdateSerializer,
)
from apps.tenancy.models import AuditLog, Role
from apps.tenancy.principal import lower_role


class CurrentTenantView(TenantAPIView):
    required_roles = {"GET": Role.VIEWER, "PATCH": Role.OWNER}

    @extend_schema(
        tags=["tenancy"],
        summary="The tenant these credentials belong to",
        responses={200: TenantSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        return Response(TenantSerializer(self.tenant, context={"principal": self.principal}).data)

    @extend_schema(
        tags=["tenancy"],
        summary="Rename the tenant or change its settings (owner)",
        description="`settings` is merged into the current settings; unknown keys are refused.",
        request=TenantUpdateSerializer,
        responses={200: TenantSerializer, **ERROR_RESPONSES},
    )
    def patch(self, request):
        payload = TenantUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        tenant = services.tenant_update(
            tenant=self.tenant,
            actor=self.actor(),
            name=payload.validated_data.get("name"),
            settings=payload.validated_data.get("settings"),
        )
        return Response(TenantSerializer(tenant, context={"principal": self.principal}).data)


@extend_schema_view(
    list=extend_schema(
        summary="List the tenant's members (admin)", responses={200: MemberSerializer(many=True), **ERROR_RESPONSES}
    ),
    retrieve=extend_schema(summary="One member (admin)", responses={200: MemberSerializer, **ERROR_RESPONSES}),
    create=extend_schema(
        summary="Add or invite a member (admin; owner to add an owner)",
        description=(
            "Adds an existing user found by username or email. Someone without an account gets "
            "one with no password (`has_password: false`) that they activate through the password reset."
        ),
        request=MemberCreateSerializer,
        responses={201: MemberSerializer, **ERROR_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change a member's role (admin; owner for owner roles)",
        request=MemberRoleSerializer,
        responses={200: MemberSerializer, **ERROR_RESPONSES},
    ),
    destroy=extend_schema(
        summary="Remove a member (admin); their API keys are revoked",
        responses={204: None, **ERROR_RESPONSES},
    ),
)
@extend_schema(tags=["tenancy"])
class MemberViewSet(TenantViewSet):
    serializer_class = MemberSerializer
    required_roles = {"*": Role.ADMIN}
    id_label = "member"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.membership_list(tenant=self.tenant)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(MemberSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(MemberSerializer(self.get_object()).data)

    def create(self, request):
        payload = MemberCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        membership, _ = services.membership_add(
            tenant=self.tenant,
            actor=self.actor(),
            actor_role=self.principal.role,
            role=payload.validated_data["role"],
            email=payload.validated_data.get("email", ""),
            username=payload.validated_data.get("username", ""),
        )
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        membership = self.get_object()
        payload = MemberRoleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        updated = services.membership_change_role(
            tenant=self.tenant,
            actor=self.actor(),
            actor_role=self.principal.role,
            membership=membership,
            role=payload.validated_data["role"],
        )
        return Response(MemberSerializer(updated).data)

    def destroy(self, request, pk=None):
        services.membership_remove(
            tenant=self.tenant, actor=self.actor(), actor_role=self.principal.role, membership=self.get_object()
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="List API keys (admin)",
        parameters=[OpenApiParameter("include_revoked", OpenApiTypes.BOOL, description="Default true.")],
        responses={200: ApiKeySerializer(many=True), **ERROR_RESPONSES},
    ),
    retrieve=extend_schema(summary="One API key (admin)", responses={200: ApiKeySerializer, **ERROR_RESPONSES}),
    create=extend_schema(
        summary="Create an API key (admin); the key is in this response only",
        description="The key can never do more than your own role; `scopes` narrow it further "
        "(read: viewer, write: member, admin: up to your role).",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, **ERROR_RESPONSES},
    ),
    destroy=extend_schema(summary="Revoke an API key (admin)", responses={204: None, **ERROR_RESPONSES}),
    revoke=extend_schema(
        summary="Revoke an API key (admin)", request=None, responses={200: ApiKeySerializer, **ERROR_RESPONSES}
    ),
)
@extend_schema(tags=["tenancy"])
class ApiKeyViewSet(TenantViewSet):
    serializer_class = ApiKeySerializer
    required_roles = {"*": Role.ADMIN}
    id_label = "key"
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_queryset(self):
        include_revoked = self.request.query_params.get("include_revoked", "true").lower() != "false"
        return selectors.api_key_list(tenant=self.tenant, include_revoked=include_revoked)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiKeySerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(ApiKeySerializer(self.get_object()).data)

    def create(self, request):
        payload = ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        api_key, plaintext = services.api_key_create(
            tenant=self.tenant,
            actor=self.actor(),
            name=data["name"],
            scopes=data.get("scopes"),
            role=self._creator_ceiling(),
            expires_at=data.get("expires_at"),
            created_by=self.principal.user,
        )
        api_key.key = plaintext
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.api_key_revoke(tenant=self.tenant, actor=self.actor(), api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        api_key = self.get_object()
        services.api_key_revoke(tenant=self.tenant, actor=self.actor(), api_key=api_key)
        api_key.refresh_from_db()
        return Response(ApiKeySerializer(api_key).data)

    def _creator_ceiling(self) -> str:
        # A key made with a key inherits that key's ceiling; a person's key, their role.
        principal = self.principal
        if principal.api_key is not None:
            return lower_role(principal.api_key.role, principal.role)
        return principal.role


class AuditLogView(TenantAPIView):
    pagination_class = DefaultPagination  # also tells the schema the list is paginated
    required_roles = {"GET": Role.ADMIN}

    @extend_schema(
        tags=["tenancy"],
        summary="The tenant's audit log, newest first (admin)",
        parameters=[
            OpenApiParameter("action", OpenApiTypes.STR, enum=AuditLog.Action.values),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601; entries at or after."),
            OpenApiParameter("limit", OpenApiTypes.INT),
            OpenApiParameter("offset", OpenApiTypes.INT),
        ],
        responses={200: AuditLogSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        since = query_datetime(request.query_params, "since")
        entries = selectors.audit_log_list(tenant=self.tenant, action=request.query_params.get("action"), since=since)
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(entries, request, view=self)
        return paginator.get_paginated_response(AuditLogSerializer(page, many=True).data)
