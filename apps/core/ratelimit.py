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

One round trip per request: the middleware runs every script a request needs (spend and read
the API budget, the chat budget, peek at the address's failure budget) in one Redis pipeline
once the URL is resolved, and authentication reads the failure verdict from the request instead
of asking Redis again. That was five sequential EVALSHAs per chat POST. A consequence: on a chat
route, a request refused by the API budget has still spent one from its chat budget.

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
from limits.storage import RedisStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from python_ipware import IpWare
from redis.exceptions import NoScriptError

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


@dataclass(frozen=True)
class Check:
    """One budget a request meets: spend one from it (`spend`) or only look at it."""

    policy: str
    spec: str
    identity: str
    spend: bool = True


def rate_limit_checks(checks: list[Check]) -> list[RateLimitResult] | None:
    """Every check in one Redis round trip (a pipeline of the `limits` library's own Lua scripts,
    on its own keys, so `rate_limit_hit` and these see one window). For a spending check,
    `allowed` says whether it was spent; for a peek, whether one more would fit. None when Redis
    cannot be reached (fail open, as `rate_limit_hit`)."""
    limiter = _limiter(settings.REDIS_URL)
    storage = limiter.storage
    if not isinstance(storage, RedisStorage):  # another backend: one call per check
        results = [rate_limit_hit(policy=c.policy, spec=c.spec, identity=c.identity) for c in checks]
        return None if any(r is None for r in results) else results
    try:
        return _pipelined(storage, checks)
    except Exception as exc:  # noqa: BLE001 - any storage failure means "no verdict", not a 500
        logger.warning("rate limiter unavailable, letting the request through: %s", exc)
        return None


def _pipelined(storage: RedisStorage, checks: list[Check]) -> list[RateLimitResult]:
    now = time.time()
    acquire, window = storage.lua_acquire_moving_window, storage.lua_moving_window
    calls: list[tuple] = []  # (script, keys, args) in pipeline order
    for check in checks:
        item = _parse(check.spec)
        key = storage.prefixed_key(item.key_for(check.policy, check.identity))
        expiry = item.get_expiry()
        if check.spend:
            calls.append((acquire, [key], [now, item.amount, expiry, 1]))
        calls.append((window, [key], [now - expiry, item.amount]))
    pipe = storage.get_connection().pipeline(transaction=False)
    for script, keys, args in calls:
        # evalsha, not the Script object: a pipeline with scripts first asks SCRIPT EXISTS,
        # a second round trip on every request. A missing script (a restarted Redis) is loaded
        # and run on its own below.
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    replies = pipe.execute(raise_on_error=False)
    replies = [
        script(keys, args) if isinstance(reply, NoScriptError) else reply
        for reply, (script, keys, args) in zip(replies, calls, strict=True)
    ]
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    results, position = [], 0
    for check in checks:
        item = _parse(check.spec)
        expiry = item.get_expiry()
        spent = None
        if check.spend:
            spent, position = bool(replies[position]), position + 1
        found, position = replies[position], position + 1
        start, count = (float(found[0]), int(found[1])) if found else (now, 0)
        remaining = item.amount - count
        results.append(
            RateLimitResult(
                policy=check.policy,
                allowed=spent if check.spend else remaining >= 1,
                limit=item.amount,
                remaining=max(0, remaining),
                reset_at=start + expiry,
                window_seconds=expiry,
            )
        )
    return results


def auth_failures_exceeded(*, address: str, request=None) -> RateLimitResult | None:
    """The failure budget of `address` when it is spent (without spending), else None.

    `request`: the verdict the rate-limit middleware already read for this request and address,
    if any, saves a round trip."""
    if not settings.RATE_LIMIT_ENABLED:
        return None
    known = getattr(request, "auth_failure_verdict", None) if request is not None else None
    if known is not None and known[0] == address:
        return known[1]
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
    """Spends from the request's budgets once its view is known (`process_view`), in one round
    trip; a request that reaches no view (no route matched) spends from the API budget after."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.RATE_LIMIT_ENABLED or request.method == "OPTIONS" or not is_api_path(request.path):
            return self.get_response(request)
        request.rate_limit_pending = True
        response = self.get_response(request)
        if request.rate_limit_pending:  # no view ran: a 404 for an unknown route, say
            request.rate_limit_pending = False
            result = rate_limit_hit(policy="api", spec=settings.API_RATE_LIMIT, identity=rate_limit_identity(request))
            if result is not None and not result.allowed:
                return too_many_requests(result)
            request.rate_limit_result = result
        shown = getattr(request, "rate_limit_result", None)
        if shown is not None and response.status_code != 429:
            apply_headers(response, shown)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not getattr(request, "rate_limit_pending", False):
            return None
        request.rate_limit_pending = False
        identity = rate_limit_identity(request)
        checks = [Check("api", settings.API_RATE_LIMIT, identity)]
        view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
        # Reading a chat is not chatting.
        chat = getattr(view_class, "rate_limit_scope", None) == "chat" and request.method not in ("GET", "HEAD")
        if chat:
            checks.append(Check("chat", settings.CHAT_RATE_LIMIT, identity))
        auth = request.META.get("HTTP_AUTHORIZATION", "")
        address = client_address(request) if auth[:7].lower() == "bearer " else None
        if address is not None:  # authentication will ask whether this address may still try
            checks.append(Check("auth-failure", settings.AUTH_FAILURE_RATE_LIMIT, address, spend=False))
        results = rate_limit_checks(checks)
        if results is None:
            request.rate_limit_result = None
            if address is not None:
                request.auth_failure_verdict = (address, None)  # fail open, as the checks did
            return None
        if address is not None:
            failures = results.pop()
            request.auth_failure_verdict = (address, None if failures.allowed else failures)
        api = results[0]
        if not api.allowed:
            return too_many_requests(api)
        # The tighter, more specific budget is the one shown.
        request.rate_limit_result = results[-1]
        return None if results[-1].allowed else too_many_requests(results[-1])
