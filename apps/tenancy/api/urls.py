from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.tenancy.api import views

router = SimpleRouter(trailing_slash=False)
router.register("members", views.MemberViewSet, basename="member")
router.register("keys", views.ApiKeyViewSet, basename="api-key")

urlpatterns = [
    path("tenants/current", views.CurrentTenantView.as_view(), name="tenant-current"),
    path("audit/log", views.AuditLogView.as_view(), name="audit-log"),
    *router.urls,
]
