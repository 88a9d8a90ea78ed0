"""The dashboard's pages. Each page module adds its own patterns here (docs/dashboard.md)."""

from __future__ import annotations

from django.urls import path

from apps.dashboard.views import auth, home

app_name = "dashboard"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.SignInView.as_view(), name="login"),
    path("logout/", auth.SignOutView.as_view(), name="logout"),
    path("account/password/", auth.password_change, name="password_change"),
    path("switch-tenant/", auth.switch_tenant, name="switch_tenant"),
]
