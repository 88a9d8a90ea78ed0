"""A real daphne on a loopback port for end-to-end tests, and a small WebSocket client on top of
the `websockets` library. A module outside tests/events makes its own session fixture:

    @pytest.fixture(scope="session")
    def daphne_server(django_db_setup, django_db_blocker):
        yield from live.serve_daphne()

The server runs `daphne agentplatform.asgi:application` against the test database and the test
Redis db, with short intervals (heartbeat, status, credential re-checks) and a small send queue
so that overflow and revocation happen within a test's time.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# The test server's settings (environment of the daphne process).
SERVER_SETTINGS = {
    "WS_SEND_QUEUE_MAX": "64",
    "WS_AUTH_RECHECK_SECONDS": "1",
    "SYSTEM_STATUS_SECONDS": "1",
    "SSE_HEARTBEAT_SECONDS": "1",
    "SSE_FALLBACK_POLL_SECONDS": "1",
    "STREAM_STALL_SECONDS": "3",
    "RATE_LIMIT_ENABLED": "false",
}


def database_url() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveDaphne:
    url: str
    ws_url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def serve_daphne(extra_settings: dict[str, str] | None = None):
    """Start daphne, yield a LiveDaphne once it answers, stop it afterwards (a fixture body)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DB_POOL_MAX_SIZE": "10",
        "PYTHONUNBUFFERED": "1",
        **SERVER_SETTINGS,
        **(extra_settings or {}),
    }
    log_path = BASE_DIR / "var" / f"test-daphne-{os.getpid()}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "agentplatform.asgi:application"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start; see {log_path}")
            try:
                httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield LiveDaphne(url=url, ws_url=f"ws://127.0.0.1:{port}", process=process, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class Socket:
    """A /ws client: the connection, plus helpers that separate events (they have an integer
    `id`) from the server's replies and notices (they have none)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.events: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
        (self.events if isinstance(message.get("id"), int) else self.notices).append(message)
        return message

    async def notice(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next notice of this type (events read on the way are kept in .events)."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if message.get("type") == kind and not isinstance(message.get("id"), int):
                return message

    async def event(self, kind: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """The next event (of this type), skipping notices."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if isinstance(message.get("id"), int) and (kind is None or message["type"] == kind):
                return message

    async def events_until(self, predicate, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        start = len(self.events)
        while True:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if isinstance(message.get("id"), int) and predicate(message):
                return self.events[start:]

    async def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds` (events and notices)."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(await self.next(left))
            except TimeoutError:
                break
        return got

    async def close_code(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes; the close code it sent."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                await self.next(max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        await self.connection.close()


async def open_socket(server: LiveDaphne, query: str = "", *, key: str | None = None, **kwargs) -> Socket:
    """Connect to /ws (key in the Authorization header unless given otherwise) and read the
    `connected` notice when the server accepted the credentials."""
    headers = dict(kwargs.pop("additional_headers", {}) or {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    expect_connected = kwargs.pop("expect_connected", True)
    connection = await connect(f"{server.ws_url}/ws{query}", additional_headers=headers, **kwargs)
    sock = Socket(connection)
    if expect_connected:
        await sock.notice("connected")
    return sock
