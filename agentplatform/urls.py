from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core import views as core_views
from apps.core.api.views_health import ServiceHealthView

api_patterns = [
    path("health", ServiceHealthView.as_view(), name="api-health"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api_docs.html"),
        name="swagger-ui",
    ),
    path("", include("apps.tenancy.api.urls")),
    path("", include("apps.agents.api.urls")),
    path("", include("apps.conversations.api.urls")),
    path("", include("apps.memory.api.urls")),
    path("", include("apps.tools.api.urls")),
    path("", include("apps.events.api.urls")),
    path("", include("apps.policy.api.urls")),
    path("", include("apps.scheduling.api.urls")),
]

urlpatterns = [
    path("health", core_views.health_view, name="health"),
    path("ready", core_views.ready_view, name="ready"),
    path("status", core_views.status_view, name="status"),
    path("metrics", ExportToDjangoView, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("", include("apps.dashboard.urls")),
]

handler400 = "apps.core.errors.bad_request_view"
handler403 = "apps.core.errors.permission_denied_view"
handler404 = "apps.core.errors.not_found_view"
handler500 = "apps.core.errors.server_error_view"
