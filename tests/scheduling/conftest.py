from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.conversations.conftest import agent, chat  # noqa: F401 - fixtures


@pytest.fixture
def in_ms():
    """`in_ms(seconds)`: Unix ms that many seconds from now (for atTimestamp)."""

    def make(seconds: float) -> int:
        return int((timezone.now() + dt.timedelta(seconds=seconds)).timestamp() * 1000)

    return make


@pytest.fixture
def start_beat(celery_worker_process):
    """`start_beat()`: a real celery beat on django-celery-beat's DatabaseScheduler against the
    test database (as the worker fixture runs it), stopped after the test. Per test: a flushed
    test database leaves a running beat's idea of "last change" behind."""
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    from tests.flows.conftest import BASE_DIR, _database_url

    started: list[tuple[subprocess.Popen, object]] = []

    def start() -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REDIS_URL": django_settings.REDIS_URL,
            "DB_POOL_MAX_SIZE": "2",
            "CELERY_BEAT_MAX_LOOP_INTERVAL": "1",
            "CRON_RUN_SETTLE_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        log = open(BASE_DIR / "var" / f"test-beat-{len(started)}.log", "w")  # noqa: SIM115 - closed at teardown
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "agentplatform", "beat", "-l", "info", "--pidfile="],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((beat, log))
        return beat

    yield start
    for beat, log in started:
        beat.terminate()
        try:
            beat.wait(10)
        except subprocess.TimeoutExpired:
            beat.kill()
        log.close()
