"""How our authentication classes appear in the OpenAPI description."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenancy.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ap_<prefix>.<secret>",
            "description": "A tenant API key: `Authorization: Bearer ap_...`.",
        }


_SESSION_COOKIE = {
    "type": "apiKey",
    "in": "cookie",
    "name": "sessionid",
    "description": "The dashboard's login session (unsafe methods also need the CSRF token).",
}


class TenantSessionScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenancy.authentication.TenantSessionAuthentication"
    name = "Session"

    def get_security_definition(self, auto_schema):
        return _SESSION_COOKIE


class UserSessionScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenancy.authentication.UserSessionAuthentication"
    name = "UserSession"  # the same cookie, for views that act for a person rather than a tenant

    def get_security_definition(self, auto_schema):
        return {**_SESSION_COOKIE, "description": "The login session of any signed-in user, member of a tenant or not."}
