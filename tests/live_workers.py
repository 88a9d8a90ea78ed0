"""Real processes for end-to-end flows: a Celery worker on the embedded Redis, against the test
database, so turns run exactly as they do under `make run`. One worker serves the whole test
session (tests/conftest.py imports these fixtures for every folder: flows, dashboard, ...)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from agentplatform.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parent.parent  # the repository (this file is in tests/)


def _database_url() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DB_POOL_MAX_SIZE": "4",
        "EMBEDDING_BACKEND": "hashing",  # as in the test process (tests/conftest.py)
        "OUTBOUND_ALLOW_LOOPBACK": "true",  # its providers point at the loopback stub model server
        # Short leases: a test that kills a worker sees the takeover in seconds.
        "TURN_LEASE_SECONDS": "4",
        "TURN_HEARTBEAT_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(BASE_DIR / "var" / "test-worker.log", "w")  # noqa: SIM115 - closed at teardown
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "agentplatform",
            "worker",
            "--concurrency",
            "2",
            "-l",
            "info",
            "-Q",
            "celery,memory",  # both queues (make run gives memory a worker of its own)
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"test-worker-{os.getpid()}@%h",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not celery_app.control.ping(timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start; see {log.name}")
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


@pytest.fixture
def real_worker(celery_worker_process):
    """Tasks go to the broker and the worker process runs them (no inline execution)."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield celery_worker_process
    celery_app.conf.task_always_eager = eager
    _wait_until_worker_idle()


def _wait_until_worker_idle(timeout: float = 30.0) -> None:
    """Let the worker finish what the test started before the test database is flushed: a turn
    still being claimed, or the memory a finished turn records, while TRUNCATE runs deadlocks the
    flush. Idle means no running turn and no task in the worker's hands."""
    from apps.conversations.models import Turn

    deadline = time.monotonic() + timeout
    while Turn.objects.filter(status=Turn.Status.RUNNING).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    # A queued turn may be in the worker's hands already; give it a moment to be claimed and end.
    if Turn.objects.filter(status=Turn.Status.QUEUED).exists():
        time.sleep(1.0)
        while Turn.objects.filter(status=Turn.Status.RUNNING).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    # Work after chat_complete (recording memory, embedding it) runs as tasks of its own.
    while time.monotonic() < deadline:
        active = celery_app.control.inspect(timeout=1, limit=1).active() or {}
        if active and not any(active.values()):
            return
        time.sleep(0.1)


@pytest.fixture
def start_beat(celery_worker_process):
    """`start_beat()`: a real celery beat on django-celery-beat's DatabaseScheduler against the
    test database (as the worker fixture runs it), stopped after the test. Per test: a flushed
    test database leaves a running beat's idea of "last change" behind."""
    started: list[tuple[subprocess.Popen, object]] = []

    def start() -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
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
