from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.agents.api import views, views_agents

router = SimpleRouter(trailing_slash=False)
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("agents", views_agents.AgentViewSet, basename="agent")

urlpatterns = [
    path("providers/platform", views.PlatformProviderListView.as_view(), name="provider-platform-list"),
    path("providers/<str:name>/key", views.ProviderKeyView.as_view(), name="provider-key"),
    path("models/available", views.AvailableModelsView.as_view(), name="models-available"),
    path("roster", views_agents.RosterView.as_view(), name="roster"),
    path("roster/<str:name>/model", views_agents.RosterModelView.as_view(), name="roster-model"),
    path("breaker/status", views.BreakerStatusView.as_view(), name="breaker-status"),
    path("breaker/reset/<str:provider>", views.BreakerResetView.as_view(), name="breaker-reset"),
    *router.urls,
]
