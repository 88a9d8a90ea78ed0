"""Who is on a WebSocket: a tenant API key, or the dashboard's session.

A key may come as `Authorization: Bearer <key>`, as `?token=<key>`, or (browsers cannot set
headers on a WebSocket) as the subprotocol pair `["bearer", "<key>"]`; the server then accepts
the `bearer` subprotocol, as browsers require. Without a key, the session cookie counts, and
then only from the site's own origin (or CSRF_TRUSTED_ORIGINS): a cookie rides along with any
page's WebSocket, so another site must not be able to open one in the user's name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from apps.core.ratelimit import auth_failures_exceeded, client_address_from_meta
from apps.events.live import in_thread
from apps.events.services import tenant_group
from apps.tenancy import selectors as tenancy_selectors
from apps.tenancy.authentication import TenantSessionAuthentication, authenticate_api_key
from apps.tenancy.models import ApiKey, Membership, Tenant
from apps.tenancy.principal import Principal

logger = logging.getLogger(__name__)

BEARER_SUBPROTOCOL = "bearer"

# Close codes (docs/realtime.md).
CLOSE_UNAUTHORIZED = 4401  # missing, invalid, revoked or expired key; suspended tenant; no membership
CLOSE_FORBIDDEN_ORIGIN = 4403  # session cookie from another site's page


def header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def query_params(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def client_ip(scope) -> str:
    """The same answer as for an HTTP request (apps.core.ratelimit.client_address_from_meta)."""
    client = scope.get("client")
    meta = {"REMOTE_ADDR": client[0] if client else ""}
    forwarded = header(scope, b"x-forwarded-for")
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address_from_meta(meta)


def offered_subprotocol(scope) -> str | None:
    """The subprotocol to accept: `bearer` when the client offered it, else none."""
    return BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in scope.get("subprotocols", ()) else None


def presented_token(scope) -> str | None:
    """The API key the client presented, wherever it put it; None when it presented none."""
    scheme, _, value = header(scope, b"authorization").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = query_params(scope).get("token")
    if token and token[0]:
        return token[0]
    subprotocols = list(scope.get("subprotocols", ()))
    if BEARER_SUBPROTOCOL in subprotocols:
        index = subprotocols.index(BEARER_SUBPROTOCOL)
        return subprotocols[index + 1] if index + 1 < len(subprotocols) else ""
    return None


def origin_allowed(scope) -> bool:
    origin = header(scope, b"origin")
    if not origin:
        return True  # not a browser page: a program holding the cookie
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    return urlparse(origin).netloc.lower() == header(scope, b"host").lower()


@dataclass(frozen=True)
class SocketAuth:
    principal: Principal | None
    via: str = ""  # "api_key" | "session"
    close_code: int = CLOSE_UNAUTHORIZED
    reason: str = ""


async def authenticate_socket(scope) -> SocketAuth:
    token = presented_token(scope)
    if token is not None:
        address = client_ip(scope)
        if await in_thread(auth_failures_exceeded)(address=address) is not None:
            return SocketAuth(None, reason="Too many failed authentications from this address; try again later.")
        principal = await in_thread(authenticate_api_key)(token, ip=address)
        if principal is None:
            return SocketAuth(None, reason="Invalid, revoked or expired API key, or the tenant is suspended.")
        return SocketAuth(principal, via="api_key")
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return SocketAuth(None, reason="Authenticate with an API key (header, ?token= or subprotocol) or a session.")
    if not origin_allowed(scope):
        return SocketAuth(None, close_code=CLOSE_FORBIDDEN_ORIGIN, reason="Session sockets only from this site.")
    session = scope.get("session")
    preferred = session.get(TenantSessionAuthentication.SESSION_TENANT_KEY) if session is not None else None
    membership = await in_thread(tenancy_selectors.membership_for_session)(user=user, preferred_tenant_id=preferred)
    if membership is None:
        return SocketAuth(None, reason="You are not a member of an active tenant.")
    principal = Principal(tenant=membership.tenant, role=membership.role, user=user, scopes=("read", "write", "admin"))
    return SocketAuth(principal, via="session")


# Sent to a tenant's group: every process's hub closes that tenant's sockets and SSE streams.
TENANT_REVOKE_MESSAGE = "tenant.revoke"


def sockets_close_for_tenant(*, tenant_id: str) -> None:
    """Close the tenant's live connections in every web process now (4401), instead of at the
    next WS_AUTH_RECHECK_SECONDS recheck. Best effort: the recheck still refuses a suspended
    tenant if this message is lost."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(tenant_group(tenant_id), {"type": TENANT_REVOKE_MESSAGE, "tenant": tenant_id})
    except Exception as exc:  # noqa: BLE001 - the periodic recheck is the backstop
        logger.warning("could not tell the web processes to close tenant %s's sockets: %s", tenant_id, exc)


def still_valid(credentials: list[tuple[str, str, str | None, str | None]]) -> set[str]:
    """Which of the live sockets' credentials still hold, in three queries whatever their number.

    Each entry is (socket key, tenant id, api key id or None, user id or None); returns the socket
    keys that may stay. A key that was revoked or expired, a tenant that was suspended, a member
    who was removed: their sockets are closed with 4401 by the caller.
    """
    from django.utils import timezone

    tenant_ids = {tenant_id for _, tenant_id, _, _ in credentials}
    active_tenants = Tenant.objects.filter(pk__in=tenant_ids, status=Tenant.Status.ACTIVE)
    active = {str(pk) for pk in active_tenants.values_list("pk", flat=True)}
    key_ids = {key_id for _, _, key_id, _ in credentials if key_id}
    now = timezone.now()
    good_keys = set()
    if key_ids:
        for pk, expiry in ApiKey.objects.filter(pk__in=key_ids, revoked=False).values_list("pk", "expiry_date"):
            if expiry is None or expiry > now:
                good_keys.add(str(pk))
    members = set()
    user_ids = {user_id for _, _, key_id, user_id in credentials if not key_id and user_id}
    if user_ids:
        members = {
            (str(t), str(u))
            for t, u in Membership.objects.filter(user_id__in=user_ids, tenant_id__in=tenant_ids).values_list(
                "tenant_id", "user_id"
            )
        }
    keep = set()
    for socket_key, tenant_id, key_id, user_id in credentials:
        if tenant_id not in active:
            continue
        if key_id and key_id not in good_keys:
            continue
        if not key_id and (tenant_id, user_id) not in members:
            continue
        keep.add(socket_key)
    return keep
