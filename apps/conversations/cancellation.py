"""Cancel flags in Redis: the worker checks one on every token batch and step, which a database
query per check would make expensive. The turn's `cancel_requested` column stays the record."""

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


def request(turn_id) -> None:
    _client(settings.REDIS_URL).set(_key(turn_id), 1, ex=_TTL_SECONDS)


def is_requested(turn_id) -> bool:
    try:
        return bool(_client(settings.REDIS_URL).exists(_key(turn_id)))
    except redis.RedisError:
        return False  # the step boundary check reads the database column as well


def clear(turn_id) -> None:
    with contextlib.suppress(redis.RedisError):
        _client(settings.REDIS_URL).delete(_key(turn_id))
