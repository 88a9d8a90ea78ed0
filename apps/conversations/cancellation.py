"""Cancel flags in Redis: the worker checks one on every token batch and step, which a database
query per check would make expensive. The turn's `cancel_requested` column stays the record.

The flag's value is the reason the turn ends with ("cancelled" when someone pressed stop,
"tenant suspended" when an operator suspended the tenant)."""

from __future__ import annotations

import contextlib
import functools

import redis
from django.conf import settings

_TTL_SECONDS = 3600


@functools.lru_cache(maxsize=2)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def _key(turn_id) -> str:
    return f"ap:turn-cancel:{turn_id}"


DEFAULT_REASON = "cancelled"


def request(turn_id, reason: str = DEFAULT_REASON) -> None:
    _client(settings.REDIS_URL).set(_key(turn_id), reason.encode(), ex=_TTL_SECONDS)


def reason(turn_id) -> str:
    """Why the turn was asked to stop; the default when the flag is gone (Redis restarted)."""
    try:
        value = _client(settings.REDIS_URL).get(_key(turn_id))
    except redis.RedisError:
        return DEFAULT_REASON
    if not value or value == b"1":
        return DEFAULT_REASON
    return value.decode(errors="replace")


def is_requested(turn_id) -> bool:
    try:
        return bool(_client(settings.REDIS_URL).exists(_key(turn_id)))
    except redis.RedisError:
        return False  # the step boundary check reads the database column as well


def clear(turn_id) -> None:
    with contextlib.suppress(redis.RedisError):
        _client(settings.REDIS_URL).delete(_key(turn_id))
