from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.tenancy.api import views

router = SimpleRouter(trailing_slash=False)
router.register("members", views.MemberViewSet, basename="member")
router.register("keys", views.ApiKeyViewSet, basename="api-key")
router.register("invitations", views.InvitationViewSet, basename="invitation")

urlpatterns = [
    path("tenants/current", views.CurrentTenantView.as_view(), name="tenant-current"),
    path("audit/log", views.AuditLogView.as_view(), name="audit-log"),
    # Before the router's `invitations/{id}`, which would otherwise take "accept" for an id.
    path("invitations/accept", views.InvitationAcceptView.as_view(), name="invitation-accept"),
    *router.urls,
]
