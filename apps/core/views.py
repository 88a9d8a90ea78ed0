"""Unauthenticated operational endpoints: liveness, readiness, status."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_safe

from apps.core import health


@require_safe
def health_view(request):  # noqa: ARG001 - Django view signature
    """Liveness: the process answers. Touches nothing else, so a database outage never
    gets a healthy web process restarted."""
    return JsonResponse({"status": "healthy"})


@require_safe
def ready_view(request):  # noqa: ARG001
    probes = health.readiness()
    missing = [name for name, probe in probes.items() if not probe.healthy]
    if missing:
        return JsonResponse(
            {
                "ready": False,
                "missing": missing,
                "details": {name: probes[name].as_json() for name in missing},
            },
            status=503,
        )
    return JsonResponse({"ready": True})


@require_safe
def status_view(request):  # noqa: ARG001
    return JsonResponse({"status": "ok", "version": settings.APP_VERSION, "uptime_seconds": health.uptime_seconds()})
