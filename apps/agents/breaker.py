"""A circuit breaker per provider, shared by every process through Redis.

After BREAKER_FAILURE_THRESHOLD consecutive availability failures (`ProviderUnavailable`:
5xx, timeouts, connection errors, 429, each already retried by the SDK) a provider's breaker
opens: calls fail at once with `BreakerOpen` for BREAKER_RESET_SECONDS, so turns fall back to
another model instead of waiting on a dead endpoint. Then one trial call goes through
(half-open): success closes the breaker, failure opens it again.

Only `ProviderUnavailable` counts. A refused request (`ProviderRequestError`), a cancelled turn
or any other exception is excluded: the provider answered, so it is up.

Built on pybreaker with `CircuitRedisStorage`, one namespace per provider id, so web and worker
processes on any machine see one state. A `CircuitBreaker` object holds a lock for the whole
guarded call; one object per thread keeps concurrent turns in a threaded worker from queueing
behind each other (the state they share lives in Redis, not in the object).
The offline provider has no breaker: it cannot fail for availability reasons.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pybreaker
import redis
from django.conf import settings

from apps.agents.models import Provider, ProviderKind
from apps.agents.providers.base import ChatResult, ProviderClient, ProviderUnavailable

logger = logging.getLogger(__name__)

NAMESPACE_PREFIX = "ap:breaker"


class BreakerOpen(ProviderUnavailable):
    """The provider's breaker is open: the call was not attempted."""

    def __init__(self, provider_name: str, retry_after_seconds: int):
        self.provider_name = provider_name
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"{provider_name}: circuit breaker open after repeated failures; next trial call in {retry_after_seconds}s."
        )


def _is_not_an_availability_failure(exc: BaseException) -> bool:
    return not isinstance(exc, ProviderUnavailable)


_redis_clients: dict[str, redis.Redis] = {}
_redis_lock = threading.Lock()
_local = threading.local()


def _redis() -> redis.Redis:
    # Read per call: tests point REDIS_URL at their own database after import.
    url = settings.REDIS_URL
    with _redis_lock:
        client = _redis_clients.get(url)
        if client is None:
            # Bytes, not str: pybreaker decodes the stored state itself.
            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            _redis_clients[url] = client
        return client


def namespace(provider: Provider) -> str:
    return f"{NAMESPACE_PREFIX}:{provider.pk}"


def _storage(provider: Provider) -> pybreaker.CircuitRedisStorage:
    return pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, _redis(), namespace=namespace(provider))


def _breaker_for(provider: Provider) -> pybreaker.CircuitBreaker:
    breakers: dict[tuple[str, str], pybreaker.CircuitBreaker] = getattr(_local, "breakers", None) or {}
    _local.breakers = breakers
    key = (settings.REDIS_URL, str(provider.pk))
    breaker = breakers.get(key)
    if breaker is None:
        breaker = pybreaker.CircuitBreaker(
            name=provider.name,
            state_storage=_storage(provider),
            exclude=[_is_not_an_availability_failure],
            # The call that trips the breaker raises its own ProviderUnavailable (with the real
            # cause); only the calls refused afterwards get CircuitBreakerError.
            throw_new_error_on_trip=False,
        )
        breakers[key] = breaker
    # Settings are read on every call so a change (or a test's override) applies at once.
    breaker.fail_max = settings.BREAKER_FAILURE_THRESHOLD
    breaker.reset_timeout = settings.BREAKER_RESET_SECONDS
    return breaker


def guarded_chat(provider: Provider, client: ProviderClient | None = None, **chat_kwargs: Any) -> ChatResult:
    """`client.chat(**chat_kwargs)` through the provider's breaker.

    Raises `BreakerOpen` (a ProviderUnavailable) without calling when the breaker is open, and
    whatever the client raises otherwise.
    """
    if client is None:
        from apps.agents.providers.registry import client_for

        client = client_for(provider)
    if provider.kind == ProviderKind.OFFLINE:
        return client.chat(**chat_kwargs)
    try:
        breaker = _breaker_for(provider)
    except redis.RedisError:
        # Without Redis there is no shared state; calling unguarded beats refusing every turn.
        logger.warning("circuit breaker unavailable (Redis down); calling %s unguarded", provider.name)
        return client.chat(**chat_kwargs)
    try:
        return breaker.call(client.chat, **chat_kwargs)
    except pybreaker.CircuitBreakerError as exc:
        raise BreakerOpen(provider.name, _retry_after(breaker.reset_timeout, _storage(provider).opened_at)) from exc


def _retry_after(reset_seconds: float, opened_at: datetime | None) -> int:
    if opened_at is None:
        return 0
    remaining = (opened_at + timedelta(seconds=reset_seconds) - datetime.now(UTC)).total_seconds()
    return max(0, math.ceil(remaining))


def provider_breaker_status(provider: Provider) -> dict[str, Any]:
    """One provider's breaker as the API shows it.

    `state` is what the next call will meet: an open breaker whose reset time has passed is
    reported as half-open, since the next call is the trial.
    """
    base = {
        "provider": provider.name,
        "provider_id": str(provider.pk),
        "kind": provider.kind,
        "state": pybreaker.STATE_CLOSED,
        "failure_count": 0,
        "opened_at": None,
        "retry_after_seconds": 0,
        "guarded": False,
    }
    if provider.kind == ProviderKind.OFFLINE:
        return base
    try:
        storage = _storage(provider)
        state, failures, opened_at = storage.state, storage.counter, storage.opened_at
    except redis.RedisError:
        return {**base, "state": "unknown"}
    retry_after = 0
    if state == pybreaker.STATE_OPEN:
        retry_after = _retry_after(settings.BREAKER_RESET_SECONDS, opened_at)
        if retry_after == 0:
            state = pybreaker.STATE_HALF_OPEN
    return {
        **base,
        "state": state,
        "failure_count": failures,
        "opened_at": opened_at.isoformat().replace("+00:00", "Z") if opened_at and state != "closed" else None,
        "retry_after_seconds": retry_after,
        "guarded": True,
    }


def breaker_status(*, tenant) -> list[dict[str, Any]]:
    """Every provider of the tenant with its breaker state, by provider name."""
    providers = Provider.objects.filter(tenant=tenant).order_by("name")
    return [provider_breaker_status(provider) for provider in providers]


def breaker_reset(*, tenant, provider: Provider) -> dict[str, Any]:
    """Close the provider's breaker now (an operator knows the endpoint is back)."""
    if provider.tenant_id != tenant.pk:
        raise Provider.DoesNotExist
    if provider.kind != ProviderKind.OFFLINE:
        storage = _storage(provider)
        storage.state = pybreaker.STATE_CLOSED
        storage.reset_counter()
        storage.reset_success_counter()
    return provider_breaker_status(provider)


def breaker_forget(provider: Provider) -> None:
    """Drop a deleted provider's keys from Redis."""
    try:
        client = _redis()
        keys = list(client.scan_iter(match=f"{namespace(provider)}:*", count=100))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        logger.warning("could not remove breaker keys of provider %s", provider.pk)
