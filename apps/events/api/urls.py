from __future__ import annotations

from django.urls import path

from apps.events.api import views

urlpatterns = [
    path("events", views.TenantEventStreamView.as_view(), name="event-stream"),
    path("sessions/<str:session_id>/events", views.SessionEventStreamView.as_view(), name="session-event-stream"),
]
