"""Probes of the services the platform depends on, for /ready and /api/health."""

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


def _timed(check: Callable[[], str]) -> Probe:
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

    return _timed(run)


def check_migrations() -> Probe:
    def run() -> str:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            raise RuntimeError(f"{len(pending)} migration(s) not applied; run `python manage.py migrate`")
        return ""

    return _timed(run)


def check_redis() -> Probe:
    return _timed(lambda: "" if _redis_client(settings.REDIS_URL).ping() else "no PONG")


def check_channel_layer() -> Probe:
    def run() -> str:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("CHANNEL_LAYERS is not configured")
        async_to_sync(layer.group_send)("health.probe", {"type": "health.probe"})
        return type(layer).__name__

    return _timed(run)


def check_celery_workers(timeout: float = 1.0) -> Probe:
    def run() -> str:
        from agentplatform.celery import app

        # limit=1: answer as soon as one worker replies instead of always waiting out the timeout.
        replies = app.control.ping(timeout=timeout, limit=1)
        if not replies:
            raise RuntimeError("no Celery worker answered; start one with `celery -A agentplatform worker`")
        return "a worker answered: " + next(iter(replies[0]))

    return _timed(run)


def check_embedder() -> Probe:
    def run() -> str:
        # Which embedder memory uses, and whether this process has loaded it. Never loads a model:
        # that takes seconds and is the worker's job (it loads at start), not a probe's.
        from apps.memory.embedders import describe_embedder

        info = describe_embedder()
        where = {"minilm": "local", "openai": "OpenAI-compatible endpoint", "hashing": "no model"}[info["backend"]]
        if info.get("runtime"):
            where += f" on {'ONNX Runtime' if info['runtime'] == 'onnx' else 'torch'}"
        state = "loaded in this process" if info["loaded"] else "loads on first use in this process"
        if info["backend"] == "minilm" and info["configured"] == "auto":
            where += ", requirements/ml.txt installed"
        elif info["backend"] == "hashing" and info["configured"] == "auto":
            where += ", requirements/ml.txt not installed"
        return f"{info['model']} ({where}; {info['dimensions']}-d; {state})"

    return _timed(run)


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
        "embedder": check_embedder(),
    }


def uptime_seconds() -> float:
    return round(time.time() - PROCESS_STARTED_AT, 1)
