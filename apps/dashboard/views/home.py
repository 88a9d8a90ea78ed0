from __future__ import annotations

from django.shortcuts import redirect

from apps.dashboard.access import member_required
from apps.dashboard.nav import nav_for


@member_required
def home(request):
    """`/`: the first page this viewer's role shows (the chat, for everyone who may read it)."""
    for section in nav_for(request.principal, request.path):
        for item in section["items"]:
            return redirect(item["url"])
    return redirect("dashboard:password_change")
