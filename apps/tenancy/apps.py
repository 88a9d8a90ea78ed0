from __future__ import annotations

from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "apps.tenancy"
    label = "tenancy"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        # Django reports failed admin/dashboard logins only through this signal; the receiver
        # just hands the attempt to the audit service.
        from django.contrib.auth.signals import user_login_failed

        from apps.tenancy import schema  # noqa: F401 - registers the OpenAPI auth extensions
        from apps.tenancy.services import audit_login_failed_receiver

        user_login_failed.connect(audit_login_failed_receiver, dispatch_uid="tenancy.audit_login_failed")
