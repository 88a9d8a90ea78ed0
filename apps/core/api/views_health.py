from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import health

_ProbeSerializer = inline_serializer(
    name="ServiceProbe",
    fields={
        "status": serializers.ChoiceField(choices=["healthy", "unhealthy"]),
        "responseTime": serializers.FloatField(help_text="Milliseconds the probe took."),
        "detail": serializers.CharField(required=False),
    },
)


class ServiceHealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["operations"],
        summary="Health of each backing service",
        description="Database, Redis, Celery workers, channel layer and embedder, each with its probe time. "
        "200 when all are healthy, 503 otherwise. No authentication.",
        auth=[],
        responses={
            200: inline_serializer(
                name="ServiceHealth",
                fields={
                    "status": serializers.ChoiceField(choices=["healthy", "unhealthy"]),
                    "services": serializers.DictField(child=_ProbeSerializer),
                },
            ),
            503: None,
        },
    )
    def get(self, request):
        probes = health.service_health()
        healthy = all(probe.healthy for probe in probes.values())
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "services": {name: probe.as_json() for name, probe in probes.items()},
        }
        return Response(body, status=200 if healthy else 503)
