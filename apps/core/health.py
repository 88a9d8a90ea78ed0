"""Probes of the services the platform depends on, for /ready and /api/health.

Core probes what every process shares (database, Redis, channel layer, Celery). A service that
belongs to a higher app (memory's embedder) is probed by that app, which adds its probe with
`health_probe_register()` from its AppConfig.ready(): core never imports the apps above it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

PROCESS_STARTED_AT = time.time()


@dataclass(frozen=True)
class Probe:
    healthy: bool
    response_ms: float
    detail: str = ""

    def as_json(self) -> dict:
        body = {"status": "healthy" if self.healthy else "unhealthy", "responseTime": round(self.response_ms, 2)}
        if self.detail:
            body["detail"] = self.detail
        return body


def timed(check: Callable[[], str]) -> Probe:
    started = time.perf_counter()
    try:
        detail = check()
        healthy = True
    except Exception as exc:  # noqa: BLE001 - a probe reports any failure as unhealthy
        detail, healthy = f"{type(exc).__name__}: {exc}"[:300], False
    return Probe(healthy=healthy, response_ms=(time.perf_counter() - started) * 1000, detail=detail)


@functools.lru_cache(maxsize=2)
def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def check_database() -> Probe:
    def run() -> str:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
        return ""

    return timed(run)


def check_migrations() -> Probe:
    def run() -> str:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            raise RuntimeError(f"{len(pending)} migration(s) not applied; run `python manage.py migrate`")
        return ""

    return timed(run)


def check_redis() -> Probe:
    return timed(lambda: "" if _redis_client(settings.REDIS_URL).ping() else "no PONG")


def check_channel_layer() -> Probe:
    def run() -> str:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("CHANNEL_LAYERS is not configured")
        async_to_sync(layer.group_send)("health.probe", {"type": "health.probe"})
        return type(layer).__name__

    return timed(run)


def check_celery_workers(timeout: float = 1.0) -> Probe:
    def run() -> str:
        # The project's app (agentplatform/celery.py, imported with the project package): core
        # may not import the project, and Celery's current app is that one in every process.
        from celery import current_app as app

        # limit=1: answer as soon as one worker replies instead of always waiting out the timeout.
        replies = app.control.ping(timeout=timeout, limit=1)
        if not replies:
            raise RuntimeError("no Celery worker answered; start one with `celery -A agentplatform worker`")
        return "a worker answered: " + next(iter(replies[0]))

    return timed(run)


# Probes of higher apps' services, by name, in the order they were added (ready() order).
_extra_probes: dict[str, Callable[[], Probe]] = {}


def health_probe_register(name: str, probe: Callable[[], Probe]) -> None:
    _extra_probes[name] = probe


def readiness() -> dict[str, Probe]:
    return {
        "database": check_database(),
        "migrations": check_migrations(),
        "redis": check_redis(),
        "channel_layer": check_channel_layer(),
    }


def service_health() -> dict[str, Probe]:
    return {
        "database": check_database(),
        "redis": check_redis(),
        "celery_workers": check_celery_workers(),
        "channel_layer": check_channel_layer(),
        **{name: probe() for name, probe in _extra_probes.items()},
    }


def uptime_seconds() -> float:
    return round(time.time() - PROCESS_STARTED_AT, 1)
