from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.views import TenantAPIView, TenantViewSet
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.core.pagination import DefaultPagination
from apps.core.params import query_datetime
from apps.core.ratelimit import client_address
from apps.core.urls_public import public_base_url
from apps.tenancy import invitations, selectors, services
from apps.tenancy.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    ApiKeyUpdateSerializer,
    AuditLogSerializer,
    InvitationAcceptedSerializer,
    InvitationAcceptSerializer,
    InvitationCreatedSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    TenantSerializer,
    TenantUpdateSerializer,
)
from apps.tenancy.authentication import UserSessionAuthentication
from apps.tenancy.models import AuditLog, Invitation, Role
from apps.tenancy.principal import Actor


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
    # No POST: people join through /api/invitations, never by an admin naming an account.
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.membership_list(tenant=self.tenant)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(MemberSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(MemberSerializer(self.get_object()).data)

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
    partial_update=extend_schema(
        summary="Change an API key's monthly budget (admin)",
        description="Only `monthly_budget_usd` can change: the spend cap of the turns this key starts, "
        "per calendar month (null removes it). Over it, those turns are refused with 402.",
        request=ApiKeyUpdateSerializer,
        responses={200: ApiKeySerializer, **ERROR_RESPONSES},
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
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

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
            role=self.principal.grant_ceiling,  # a key made with a key inherits its ceiling
            expires_at=data.get("expires_at"),
            created_by=self.principal.user,
            monthly_budget_usd=data.get("monthly_budget_usd"),
        )
        api_key.key = plaintext
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        payload = ApiKeyUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        api_key = self.get_object()
        if "monthly_budget_usd" in payload.validated_data:  # only what is sent changes
            api_key = services.api_key_update(
                tenant=self.tenant,
                actor=self.actor(),
                api_key=api_key,
                monthly_budget_usd=payload.validated_data["monthly_budget_usd"],
            )
        return Response(ApiKeySerializer(api_key).data)

    def destroy(self, request, pk=None):
        services.api_key_revoke(tenant=self.tenant, actor=self.actor(), api_key=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        api_key = self.get_object()
        services.api_key_revoke(tenant=self.tenant, actor=self.actor(), api_key=api_key)
        api_key.refresh_from_db()
        return Response(ApiKeySerializer(api_key).data)


class AuditLogView(TenantAPIView):
    pagination_class = DefaultPagination  # also tells the schema the list is paginated
    required_roles = {"GET": Role.ADMIN}

    @extend_schema(
        tags=["tenancy"],
        summary="The tenant's audit log, newest first (admin)",
        parameters=[
            OpenApiParameter("action", OpenApiTypes.STR, enum=AuditLog.Action.values),
            OpenApiParameter(
                "actor", OpenApiTypes.STR, description="Part of who acted, e.g. `user:ana` or `api_key:ap_`."
            ),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="ISO 8601; entries at or after."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="ISO 8601; entries before."),
            OpenApiParameter("limit", OpenApiTypes.INT),
            OpenApiParameter("offset", OpenApiTypes.INT),
        ],
        responses={200: AuditLogSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        params = request.query_params
        entries = selectors.audit_log_list(
            tenant=self.tenant,
            action=params.get("action"),
            actor=params.get("actor", "").strip()[:200] or None,
            since=query_datetime(params, "since"),
            until=query_datetime(params, "until"),
        )
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(entries, request, view=self)
        return paginator.get_paginated_response(AuditLogSerializer(page, many=True).data)


_INVITATION_STATUSES = [*Invitation.Status.values, "all"]


@extend_schema_view(
    list=extend_schema(
        summary="List invitations (admin); pending ones unless `status` says otherwise",
        parameters=[OpenApiParameter("status", OpenApiTypes.STR, enum=_INVITATION_STATUSES)],
        responses={200: InvitationSerializer(many=True), **ERROR_RESPONSES},
    ),
    retrieve=extend_schema(summary="One invitation (admin)", responses={200: InvitationSerializer, **ERROR_RESPONSES}),
    create=extend_schema(
        summary="Invite someone by email (admin; owner to invite an owner); the token is in this response only",
        description=(
            "Nobody is looked up: the answer is the same whether or not the address has an account "
            "anywhere. Send `accept_url` (the dashboard's page for the `token`) to the invitee; they accept "
            "it there, or with `POST /api/invitations/accept`, while signed in with this email. "
            "A newer invitation to the same address replaces a pending one. "
            "409 when someone with this email is already a member of this tenant."
        ),
        request=InvitationCreateSerializer,
        responses={
            201: InvitationCreatedSerializer,
            409: OpenApiResponse(ErrorSerializer, description="Already a member of this tenant."),
            **ERROR_RESPONSES,
        },
    ),
    destroy=extend_schema(
        summary="Revoke a pending invitation (admin; owner for owner invitations)",
        responses={204: None, **ERROR_RESPONSES},
    ),
)
@extend_schema(tags=["tenancy"])
class InvitationViewSet(TenantViewSet):
    serializer_class = InvitationSerializer
    required_roles = {"*": Role.ADMIN}
    id_label = "invitation"
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.invitation_list(tenant=self.tenant, status="all")

    def list(self, request):
        wanted = request.query_params.get("status", Invitation.Status.PENDING)
        if wanted not in _INVITATION_STATUSES:
            raise ValidationError({"status": [f"Use one of {', '.join(_INVITATION_STATUSES)}."]})
        page = self.paginate_queryset(selectors.invitation_list(tenant=self.tenant, status=wanted))
        return self.get_paginated_response(InvitationSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(InvitationSerializer(self.get_object()).data)

    def create(self, request):
        payload = InvitationCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        invitation, token = invitations.invitation_create(
            tenant=self.tenant,
            actor=self.actor(),
            actor_role=self.principal.grant_ceiling,  # a key cannot invite above itself
            email=payload.validated_data["email"],
            role=payload.validated_data["role"],
            invited_by=self.principal.user,
        )
        invitation.token = token
        invitation.accept_url = invitations.invitation_link(token=token, base_url=public_base_url(request))
        return Response(InvitationCreatedSerializer(invitation).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        invitations.invitation_revoke(
            tenant=self.tenant, actor=self.actor(), actor_role=self.principal.role, invitation=self.get_object()
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptView(APIView):
    """Not tenant-scoped: the invitee may belong to no tenant yet."""

    authentication_classes = [UserSessionAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["tenancy"],
        summary="Accept an invitation (signed in as the invitee)",
        description=(
            "Needs the dashboard session of a user whose email is the invited address; API keys are "
            "not people and cannot accept. Every token this account cannot use (unknown, revoked, "
            "already accepted, or for another address) gets the same 404. 409 when it expired, the "
            "tenant is suspended, or you are already a member."
        ),
        request=InvitationAcceptSerializer,
        responses={
            200: InvitationAcceptedSerializer,
            409: OpenApiResponse(ErrorSerializer, description="Expired, tenant suspended, or already a member."),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request):
        payload = InvitationAcceptSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        actor = Actor.of_user(request.user, ip=client_address(request), request_id=getattr(request, "request_id", ""))
        token = payload.validated_data["token"]
        membership = invitations.invitation_accept(token=token, user=request.user, actor=actor)
        return Response(InvitationAcceptedSerializer(membership).data)
