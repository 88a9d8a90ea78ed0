"""Providers, their keys, the model catalog and the circuit breakers."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.agents import breaker, selectors, services
from apps.agents.api.serializers import (
    AvailableModelSerializer,
    BreakerStatusListSerializer,
    BreakerStatusSerializer,
    PlatformProviderSerializer,
    ProbeSerializer,
    ProviderCreateSerializer,
    ProviderKeySerializer,
    ProviderModelsSerializer,
    ProviderSerializer,
    ProviderUpdateSerializer,
)
from apps.agents.providers.base import ProviderError
from apps.agents.routing import candidates_for
from apps.core.api.views import TenantAPIView, TenantViewSet
from apps.core.errors import error_body
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.core.pagination import DefaultPagination
from apps.tenancy.models import Role

READ_VIEWER_WRITE_ADMIN = {"GET": Role.VIEWER, "HEAD": Role.VIEWER, "OPTIONS": Role.VIEWER, "*": Role.ADMIN}
PROVIDER_ERROR_RESPONSE = OpenApiResponse(
    ErrorSerializer,
    description='The provider failed or refused: `{"error": "Provider error", "message": ...}`.',
)
CONFLICT_RESPONSE = OpenApiResponse(ErrorSerializer, description="The name is taken in this tenant.")


def _provider_error(exc: ProviderError) -> Response:
    return Response(error_body("Provider error", str(exc)), status=status.HTTP_502_BAD_GATEWAY)


# --- providers -----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List the tenant's model providers",
        responses={200: ProviderSerializer(many=True), **ERROR_RESPONSES},
    ),
    retrieve=extend_schema(summary="One provider", responses={200: ProviderSerializer, **ERROR_RESPONSES}),
    create=extend_schema(
        summary="Add a provider (admin)",
        description=(
            "Kinds: `openai`, `anthropic`, `ollama` (needs base_url), `openai_compatible` "
            "(vLLM, LM Studio, ...; needs base_url) and `offline` (built in, no network). "
            "`api_key` is stored encrypted and never returned; responses carry `api_key_hint` and "
            "`has_api_key`; header values in `options` show as hints. The provider's catalog gets `models`, "
            "or by default the price table's models of its kind (for Ollama and OpenAI-compatible servers, "
            "see GET /api/providers/{id}/models). "
            "`platform` instead links a platform provider (the operator's; GET /api/providers/platform): "
            "no kind, base_url, api_key or options then."
        ),
        request=ProviderCreateSerializer,
        responses={201: ProviderSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change a provider (admin)",
        description="Any of name, base_url, enabled, options; `api_key` replaces the stored key. A new "
        "`base_url` clears the stored key and header values unless they come in the same request. "
        "A platform provider (`platform: true`) changes only `name` and `enabled`: base_url, options "
        "or api_key answer 400.",
        request=ProviderUpdateSerializer,
        responses={200: ProviderSerializer, 409: CONFLICT_RESPONSE, **ERROR_RESPONSES},
    ),
    destroy=extend_schema(
        summary="Delete a provider (admin)",
        description="Its catalog models go too; agents using them lose those role assignments. For a "
        "platform provider this unlinks it for this tenant only (link it again with POST `platform`).",
        responses={204: None, **ERROR_RESPONSES},
    ),
    models=extend_schema(
        summary="The models the provider's endpoint lists now",
        description="A live call to the provider (one attempt, short timeout). `in_catalog` tells which "
        "of them agents can already use.",
        responses={200: ProviderModelsSerializer, 502: PROVIDER_ERROR_RESPONSE, **ERROR_RESPONSES},
    ),
    test=extend_schema(
        summary="Test that the provider is reachable (admin)",
        description="Lists the endpoint's models once and reports the latency; failures are reported "
        "in the body (`reachable: false`, `error`), not as an error status.",
        request=None,
        responses={200: ProbeSerializer, **ERROR_RESPONSES},
    ),
)
@extend_schema(tags=["providers"])
class ProviderViewSet(TenantViewSet):
    """Where the tenant's models are served from. Everyone in the tenant reads; admins write."""

    serializer_class = ProviderSerializer
    required_roles = READ_VIEWER_WRITE_ADMIN
    id_label = "provider"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.provider_list(tenant=self.tenant)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ProviderSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(ProviderSerializer(self.get_object()).data)

    def create(self, request):
        payload = ProviderCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        platform_name = data.pop("platform", None)
        if platform_name is not None:
            provider = self._link(platform_name, data)
        else:
            if "kind" not in data or "name" not in data:
                raise ValidationError({f: ["This field is required."] for f in ("name", "kind") if f not in data})
            provider = services.provider_create(tenant=self.tenant, actor=self.actor(), **data)
        return Response(ProviderSerializer(provider).data, status=status.HTTP_201_CREATED)

    def _link(self, platform_name: str, data: dict):
        given = [f for f in ("kind", "base_url", "api_key", "options") if data.get(f)]
        if given:
            raise ValidationError(
                {f: ["Not with `platform`: the platform provider's are the operator's."] for f in given}
            )
        platform = selectors.platform_provider_get_usable(tenant=self.tenant, name=platform_name)
        if platform is None:
            raise ValidationError({"platform": [f"No platform provider named '{platform_name}' is available to you."]})
        return services.platform_provider_link(
            tenant=self.tenant,
            actor=self.actor(),
            platform_provider=platform,
            name=data.get("name"),
            enabled=data.get("enabled", True),
            models=data.get("models"),
        )

    def partial_update(self, request, pk=None):
        provider = self.get_object()
        payload = ProviderUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        provider = services.provider_update(
            tenant=self.tenant, actor=self.actor(), provider=provider, **payload.validated_data
        )
        return Response(ProviderSerializer(provider).data)

    def destroy(self, request, pk=None):
        services.provider_delete(tenant=self.tenant, actor=self.actor(), provider=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["get"])
    def models(self, request, pk=None):
        try:
            return Response(selectors.provider_models_live(tenant=self.tenant, provider=self.get_object()))
        except ProviderError as exc:
            return _provider_error(exc)

    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        return Response(selectors.provider_probe(provider=self.get_object()))


class PlatformProviderListView(TenantAPIView):
    @extend_schema(
        tags=["providers"],
        summary="Platform providers this tenant may use",
        description="Providers the operator runs and pays for. Link one with POST /api/providers "
        '`{"platform": "<name>"}`; its endpoint, headers and key are never shown. Spend through it counts '
        "against the tenant's budget and against the operator's cap for this tenant, if any.",
        responses={200: PlatformProviderSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        linked = set(
            selectors.provider_list(tenant=self.tenant)
            .filter(platform__isnull=False)
            .values_list("platform_id", flat=True)
        )
        rows = [
            {
                "name": platform.name,
                "kind": platform.kind,
                "linked": platform.pk in linked,
                "monthly_cap_usd": selectors.platform_cap_for(self.tenant, platform),
                "spent_this_month_usd": selectors.platform_spend_this_month(self.tenant, platform),
            }
            for platform in selectors.platform_providers_usable(tenant=self.tenant)
        ]
        return Response(PlatformProviderSerializer(rows, many=True).data)


class ProviderKeyView(TenantAPIView):
    """The provider's API key, addressed by provider name."""

    required_roles = {"*": Role.ADMIN}

    def _provider(self, name: str):
        provider = selectors.provider_get_by_name(tenant=self.tenant, name=name)
        if provider is None:
            raise Http404
        return provider

    @extend_schema(
        tags=["providers"],
        summary="Set or replace a provider's API key (admin)",
        description="The key is stored encrypted; the response shows only its hint.",
        request=ProviderKeySerializer,
        responses={200: ProviderSerializer, **ERROR_RESPONSES},
    )
    def put(self, request, name: str):
        provider = self._provider(name)  # before validation: another tenant's name is a 404, not a 400
        payload = ProviderKeySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        provider = services.provider_set_key(
            tenant=self.tenant, actor=self.actor(), provider=provider, api_key=payload.validated_data["api_key"]
        )
        return Response(ProviderSerializer(provider).data)

    @extend_schema(
        tags=["providers"],
        summary="Remove a provider's API key (admin)",
        responses={200: ProviderSerializer, **ERROR_RESPONSES},
    )
    def delete(self, request, name: str):
        provider = services.provider_delete_key(tenant=self.tenant, actor=self.actor(), provider=self._provider(name))
        return Response(ProviderSerializer(provider).data)


class AvailableModelsView(TenantAPIView):
    pagination_class = DefaultPagination  # also tells the schema the list is paginated

    @extend_schema(
        tags=["models"],
        summary="Models agents can use",
        description="Catalog entries that are enabled, of enabled providers, with capabilities and "
        "effective prices (the entry's own, else the platform price table's).",
        parameters=[
            OpenApiParameter("provider", OpenApiTypes.STR, description="Only this provider (name)."),
            OpenApiParameter("supports_tools", OpenApiTypes.BOOL),
            OpenApiParameter("supports_vision", OpenApiTypes.BOOL),
        ],
        responses={200: AvailableModelSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        params = request.query_params
        models = selectors.catalog_models_available(
            tenant=self.tenant,
            provider_name=params.get("provider") or None,
            supports_tools=_bool_param(params.get("supports_tools")),
            supports_vision=_bool_param(params.get("supports_vision")),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(models, request, view=self)
        return paginator.get_paginated_response(AvailableModelSerializer(candidates_for(page), many=True).data)


def _bool_param(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.lower() in ("1", "true", "yes")


# --- breaker -------------------------------------------------------------------------------------


class BreakerStatusView(TenantAPIView):
    @extend_schema(
        tags=["providers"],
        summary="Circuit breaker state of each provider",
        description="A provider's breaker opens after consecutive availability failures (5xx, timeouts, "
        "connection errors, 429); while open, turns skip it and fall back to other models. After the "
        "reset time one trial call is let through (half-open).",
        responses={200: BreakerStatusListSerializer, **ERROR_RESPONSES},
    )
    def get(self, request):
        return Response({"breakers": breaker.breaker_status(tenant=self.tenant)})


class BreakerResetView(TenantAPIView):
    required_roles = {"*": Role.ADMIN}

    @extend_schema(
        tags=["providers"],
        summary="Close a provider's circuit breaker now (admin)",
        description="For when you know the provider is back: the next call goes through at once.",
        request=None,
        responses={200: BreakerStatusSerializer, **ERROR_RESPONSES},
    )
    def post(self, request, provider: str):
        found = selectors.provider_get_by_name(tenant=self.tenant, name=provider)
        if found is None:
            raise Http404
        return Response(services.provider_breaker_reset(tenant=self.tenant, actor=self.actor(), provider=found))
