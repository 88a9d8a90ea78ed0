"""The dashboard's pages. Each page module adds its own patterns here (docs/dashboard.md)."""

from __future__ import annotations

from django.urls import path

from apps.dashboard.views import auth, chat, home

app_name = "dashboard"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.SignInView.as_view(), name="login"),
    path("logout/", auth.SignOutView.as_view(), name="logout"),
    path("account/password/", auth.password_change, name="password_change"),
    path("switch-tenant/", auth.switch_tenant, name="switch_tenant"),
    path("chat/", chat.chat_index, name="chat"),
    path("chat/new/", chat.chat_new, name="chat_new"),
    path("chat/<uuid:session_id>/", chat.chat_session, name="chat_session"),
    path("chat/<uuid:session_id>/rename/", chat.chat_rename, name="chat_rename"),
    path("chat/<uuid:session_id>/archive/", chat.chat_archive, name="chat_archive"),
    path("chat/<uuid:session_id>/delete/", chat.chat_delete, name="chat_delete"),
    path("chat/<uuid:session_id>/turns/<uuid:turn_id>/", chat.chat_turn, name="chat_turn"),
]
