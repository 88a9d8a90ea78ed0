"""DRF authentication: tenant API keys (Bearer) for programs, the session for the dashboard."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from rest_framework import authentication, exceptions

from apps.core.constants import UNAUTHORIZED_MESSAGE
from apps.core.ratelimit import auth_failure_record, auth_failures_exceeded, client_address
from apps.tenancy import selectors, services
from apps.tenancy.models import ApiKey, Tenant
from apps.tenancy.principal import Principal, lower_role, scope_ceiling

logger = logging.getLogger(__name__)

# Failed attempts against one real key prefix are audited at most once per window, so a
# flood of bad secrets cannot turn into a flood of database writes.
_FAILED_AUDIT_WINDOW_SECONDS = 60


def _unauthorized() -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed(UNAUTHORIZED_MESSAGE)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword:
            return None  # another scheme; the session may still authenticate
        token = token.strip()
        address = client_address(request)
        blocked = auth_failures_exceeded(address=address, request=request)
        if blocked is not None:
            raise exceptions.Throttled(
                wait=max(1, blocked.reset_in), detail="Too many failed authentications from this address."
            )
        principal = authenticate_api_key(token, ip=address)
        if principal is None:
            raise _unauthorized()
        return (principal.user or AnonymousUser(), principal)


def authenticate_api_key(token: str, *, ip: str | None = None) -> Principal | None:
    """Resolve a presented key to a Principal, or None. Shared by HTTP, SSE and WebSocket auth.

    Every failure counts against the client address (AUTH_FAILURE_RATE_LIMIT); callers check
    `auth_failures_exceeded` first, so a flood of guesses stops before the database.
    """
    principal = _resolve_api_key(token, ip=ip)
    if principal is None and ip:
        auth_failure_record(address=ip)
    return principal


def _resolve_api_key(token: str, *, ip: str | None) -> Principal | None:
    if not token or "." not in token or len(token) > 200:
        return None
    prefix = token.partition(".")[0]
    api_key = selectors.api_key_by_prefix(prefix=prefix)
    if api_key is None:
        return None
    if api_key.revoked or api_key.has_expired or not api_key.is_valid(token):
        _audit_failed_key(api_key, ip=ip)
        return None
    tenant: Tenant = api_key.tenant
    if not tenant.is_active:
        return None
    role = lower_role(api_key.role, scope_ceiling(api_key.scopes))
    services.api_key_touch(api_key=api_key, resolution_seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    return Principal(tenant=tenant, role=role, user=api_key.created_by, api_key=api_key, scopes=tuple(api_key.scopes))


def _audit_failed_key(api_key: ApiKey, *, ip: str | None) -> None:
    try:
        first_in_window = cache.add(f"authfail:{api_key.prefix}", 1, _FAILED_AUDIT_WINDOW_SECONDS)
    except Exception:  # noqa: BLE001 - without Redis, audit every failure rather than none
        first_in_window = True
    if first_in_window:
        services.audit_login_failed(username=api_key.prefix, ip=ip, channel="api_key", tenant=api_key.tenant)


class TenantSessionAuthentication(authentication.SessionAuthentication):
    """The dashboard's session: the tenant is the one chosen in the session, else the first."""

    SESSION_TENANT_KEY = "tenant_id"

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        membership = selectors.membership_for_session(
            user=user, preferred_tenant_id=request._request.session.get(self.SESSION_TENANT_KEY)
        )
        if membership is None or not membership.tenant.is_active:
            raise _unauthorized()
        principal = Principal(
            tenant=membership.tenant, role=membership.role, user=user, scopes=("read", "write", "admin")
        )
        return (user, principal)


class UserSessionAuthentication(authentication.SessionAuthentication):
    """A signed-in person, whichever tenants they belong to (none yet, when accepting an invitation).

    No Principal: views that use it act for the user, never for a tenant. CSRF is enforced as
    for every session request.
    """

    def authenticate_header(self, request) -> str:
        return 'Session realm="dashboard"'  # a 401, not a 403, when nobody is signed in
