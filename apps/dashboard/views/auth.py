"""Sign in and out, password change, and the tenant switcher."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from apps.dashboard.access import member_required, tenant_switch


class SignInView(auth_views.LoginView):
    template_name = "dashboard/auth/login.html"
    redirect_authenticated_user = True


class SignOutView(auth_views.LogoutView):
    pass  # POST only (Django 5): a link cannot sign anyone out


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "dashboard/auth/password_change.html"
    success_url = reverse_lazy("dashboard:password_change")

    def dispatch(self, request, *args, **kwargs):
        # The frame needs the tenant; a user in no tenant still may change their password.
        from apps.dashboard.access import session_principal

        principal = session_principal(request) if request.user.is_authenticated else None
        if principal is not None:
            request.principal = principal
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)  # keeps this session signed in, ends the others
        messages.success(self.request, "Password changed. Other signed-in browsers were signed out.")
        return response


password_change = login_required(PasswordChangeView.as_view())


@require_POST
@member_required
def switch_tenant(request):
    tenant = tenant_switch(request, tenant_id=request.POST.get("tenant", ""))
    messages.success(request, f"Now working in {tenant.name}.")
    # Home, not back: the page being left belongs to the other tenant and would be a 404 here.
    return redirect("dashboard:home")
