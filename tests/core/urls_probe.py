"""The real URLconf plus two probe views, to test what happens when a view crashes and how a
chat-scoped view is rate limited (no chat route exists in this app yet)."""

from __future__ import annotations

from django.urls import path
from rest_framework.response import Response

from agentplatform.urls import handler404, handler500  # noqa: F401
from agentplatform.urls import urlpatterns as real_patterns
from apps.core.api.views import TenantAPIView


class CrashView(TenantAPIView):
    def get(self, request):
        raise RuntimeError("secret internal detail")


class ChatProbeView(TenantAPIView):
    rate_limit_scope = "chat"

    def post(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("api/probe/crash", CrashView.as_view()),
    path("api/probe/chat", ChatProbeView.as_view()),
    *real_patterns,
]
