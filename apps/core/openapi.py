"""Shared pieces of the OpenAPI description."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": serializers.CharField(help_text="A short summary, e.g. `Not found`."),
        "message": serializers.CharField(required=False, help_text="What went wrong and what to do."),
        "fields": serializers.DictField(required=False, help_text="Per-field validation messages."),
    },
)

ERROR_RESPONSES = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid JSON, malformed id, or failed validation (`fields`)."),
    401: OpenApiResponse(ErrorSerializer, description="Missing, invalid, revoked or expired API key."),
    403: OpenApiResponse(ErrorSerializer, description="Your role or key scopes do not allow this."),
    404: OpenApiResponse(ErrorSerializer, description="No such object in your tenant."),
    429: OpenApiResponse(ErrorSerializer, description="Rate limited; see `Retry-After`."),
}
