"""The dashboard's pages. Each page module adds its own patterns here (docs/dashboard.md)."""

from __future__ import annotations

from django.urls import path

from apps.dashboard.views import approvals, auth, home, memory, observatory

app_name = "dashboard"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.SignInView.as_view(), name="login"),
    path("logout/", auth.SignOutView.as_view(), name="logout"),
    path("account/password/", auth.password_change, name="password_change"),
    path("switch-tenant/", auth.switch_tenant, name="switch_tenant"),
    # Turn observatory, approvals inbox, memory (docs/dashboard.md).
    path("turns/<uuid:turn_id>/", observatory.turn_detail, name="turn"),
    path("approvals/", approvals.approvals_page, name="approvals"),
    path("approvals/list/", approvals.approvals_list, name="approvals_list"),
    path("approvals/<uuid:approval_id>/decide/", approvals.approval_decide, name="approval_decide"),
    path("memory/", memory.memory_page, name="memory"),
    path("memory/timeline/", memory.memory_timeline, name="memory_timeline"),
    path("memory/entries/<uuid:entry_id>/delete/", memory.memory_entry_delete, name="memory_entry_delete"),
    path("memory/delete/", memory.memory_bulk_delete, name="memory_bulk_delete"),
    path("memory/clear/", memory.memory_collection_clear, name="memory_clear"),
]
