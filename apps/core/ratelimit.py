"""Rate limits for /api/, atomic in Redis.

The `limits` library's moving window runs as one Lua script in Redis, so concurrent requests
from many processes can never let more than the limit through (DRF's throttles read, then
write, and can). Every /api/ request spends from API_RATE_LIMIT; views that set
`rate_limit_scope = "chat"` also spend from CHAT_RATE_LIMIT.

The identity is the API key (a hash of the presented token, so a bad token cannot drain a
real key's budget), else the logged-in user, else the client address.

Failed authentications are counted per client address as well (AUTH_FAILURE_RATE_LIMIT):
without that, every random token would start a fresh window of its own and cost a database
lookup. Past the limit, a bearer token is answered 429 before it is looked up.

The client address comes from `client_address_from_meta`, for HTTP and WebSocket alike:
python-ipware reads X-Forwarded-For only when TRUSTED_PROXY_COUNT proxies sit in front of us,
and then takes the hop our own outermost proxy wrote, never the client-written leftmost one.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.http import JsonResponse
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from python_ipware import IpWare

from apps.core.errors import error_body, is_api_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimitResult:
    policy: str
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the oldest counted request leaves the window
    window_seconds: int

    @property
    def reset_in(self) -> int:
        return max(0, math.ceil(self.reset_at - time.time()))


@functools.lru_cache(maxsize=4)
def _limiter(storage_url: str) -> MovingWindowRateLimiter:
    storage = storage_from_string(storage_url, socket_connect_timeout=1, socket_timeout=1)
    return MovingWindowRateLimiter(storage)


@functools.lru_cache(maxsize=32)
def _parse(spec: str) -> RateLimitItem:
    return parse(spec)


@functools.lru_cache(maxsize=8)
def _ipware(trusted_proxies: int) -> IpWare:
    # Our last proxy is the peer (REMOTE_ADDR) and is not in the header; each proxy before it
    # appended the address it received from. So with N proxies the client is the N-th entry from
    # the right, which is what python-ipware returns when told of N-1 proxy hops in the header.
    # Only X-Forwarded-For is read: X-Real-IP, CF-Connecting-IP and the like are as forgeable
    # as any header when no proxy of ours sets them.
    return IpWare(precedence=("HTTP_X_FORWARDED_FOR",), leftmost=True, proxy_count=trusted_proxies - 1)


def client_address_from_meta(meta: Mapping[str, str]) -> str:
    """The client's address from a META-like mapping (REMOTE_ADDR, HTTP_X_FORWARDED_FOR)."""
    peer = meta.get("REMOTE_ADDR", "") or "unknown"
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0 or not meta.get("HTTP_X_FORWARDED_FOR"):
        return peer
    ip, _ = _ipware(trusted).get_client_ip(meta, strict=False)
    # A header shorter than our proxy chain (or unparsable) did not come through all of our
    # proxies: the peer is the best we know.
    return str(ip) if ip is not None else peer


def ip_or_none(value: str | None) -> str | None:
    """`value` when it is an IP address, else None. The client address is "unknown" without a
    REMOTE_ADDR (a unix socket, some test clients) and anything a trusted proxy's
    X-Forwarded-For says; an inet column must not turn that into a 500."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_address(request) -> str:
    return client_address_from_meta(request.META)


def rate_limit_identity(request) -> str:
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return "key:" + hashlib.sha256(auth[7:].strip().encode()).hexdigest()[:32]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return "ip:" + client_address(request)


def rate_limit_hit(*, policy: str, spec: str, identity: str) -> RateLimitResult | None:
    """Spend one request from `identity`'s budget under `spec` ("100/minute").

    Returns None when Redis cannot be reached: the API stays up (fails open) and the outage
    shows on /ready and /api/health instead of turning every request into an error.
    """
    item = _parse(spec)
    limiter = _limiter(settings.REDIS_URL)
    try:
        allowed = limiter.hit(item, policy, identity)
        stats = limiter.get_window_stats(item, policy, identity)
    except Exception as exc:  # noqa: BLE001 - any storage failure means "no verdict", not a 500
        logger.warning("rate limiter unavailable, letting the request through: %s", exc)
        return None
    return RateLimitResult(
        policy=policy,
        allowed=allowed,
        limit=item.amount,
        remaining=max(0, stats.remaining),
        reset_at=stats.reset_time,
        window_seconds=item.get_expiry(),
    )


def auth_failures_exceeded(*, address: str) -> RateLimitResult | None:
    """The failure budget of `address` when it is spent (without spending), else None."""
    if not settings.RATE_LIMIT_ENABLED:
        return None
    item = _parse(settings.AUTH_FAILURE_RATE_LIMIT)
    limiter = _limiter(settings.REDIS_URL)
    try:
        if limiter.test(item, "auth-failure", address):
            return None
        stats = limiter.get_window_stats(item, "auth-failure", address)
    except Exception as exc:  # noqa: BLE001 - fail open, like the request budget
        logger.warning("rate limiter unavailable, not checking failed authentications: %s", exc)
        return None
    return RateLimitResult(
        policy="auth-failure",
        allowed=False,
        limit=item.amount,
        remaining=0,
        reset_at=stats.reset_time,
        window_seconds=item.get_expiry(),
    )


def auth_failure_record(*, address: str) -> None:
    """Count one failed authentication from `address`."""
    if settings.RATE_LIMIT_ENABLED:
        rate_limit_hit(policy="auth-failure", spec=settings.AUTH_FAILURE_RATE_LIMIT, identity=address)


def apply_headers(response, result: RateLimitResult) -> None:
    response["X-RateLimit-Limit"] = str(result.limit)
    response["X-RateLimit-Remaining"] = str(result.remaining)
    response["X-RateLimit-Reset"] = str(math.ceil(result.reset_at))
    # IETF draft-ietf-httpapi-ratelimit-headers: structured fields naming the policy.
    response["RateLimit-Policy"] = f'"{result.policy}";q={result.limit};w={result.window_seconds}'
    response["RateLimit"] = f'"{result.policy}";r={result.remaining};t={result.reset_in}'


def too_many_requests(result: RateLimitResult) -> JsonResponse:
    retry_after = max(1, result.reset_in)
    response = JsonResponse(
        error_body("Too many requests", f"Rate limited; retry in {retry_after} s.", retryAfter=retry_after), status=429
    )
    response["Retry-After"] = str(retry_after)
    apply_headers(response, result)
    response["X-RateLimit-Remaining"] = "0"
    return response


class RateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.RATE_LIMIT_ENABLED or request.method == "OPTIONS" or not is_api_path(request.path):
            return self.get_response(request)
        result = rate_limit_hit(policy="api", spec=settings.API_RATE_LIMIT, identity=rate_limit_identity(request))
        if result is not None and not result.allowed:
            return too_many_requests(result)
        request.rate_limit_result = result
        response = self.get_response(request)
        shown = getattr(request, "rate_limit_result", None)
        if shown is not None and response.status_code != 429:
            apply_headers(response, shown)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
        if getattr(view_class, "rate_limit_scope", None) != "chat" or not settings.RATE_LIMIT_ENABLED:
            return None
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None  # reading a chat is not chatting
        result = rate_limit_hit(policy="chat", spec=settings.CHAT_RATE_LIMIT, identity=rate_limit_identity(request))
        if result is None:
            return None
        request.rate_limit_result = result  # the tighter, more specific budget is the one shown
        return None if result.allowed else too_many_requests(result)
