"""A bare TCP listener on loopback that counts the connections it accepts.

The hostile-URL tests point URLs at it (in every spelling of 127.0.0.1) and assert it saw no
connection at all: a refusal that happens after connecting would still be a port scanner.
Each accepted connection gets `response` (raw bytes, default none) and is closed; the first
line and the Host header of what arrived are recorded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest


class Listener:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.response = b""
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            data = b""
            try:
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            head = data.decode("latin-1").split("\r\n")
            host = next((line.split(":", 1)[1].strip() for line in head[1:] if line.lower().startswith("host:")), "")
            with self._lock:
                self.requests.append({"line": head[0] if head else "", "host": host})
            if self.response:
                with contextlib.suppress(OSError):
                    conn.sendall(self.response)

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self._sock.close()


def http_response(status: str, *, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def hostile_urls(port: int) -> list[str]:
    """The issue's table of URLs a tenant must not reach. Those that can reach the loopback
    listener carry its port, so a connection that slipped through would be counted."""
    return [
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://2130706433:{port}/",
        f"http://0x7f.1:{port}/",
        f"http://017700000001:{port}/",
        f"http://127.1:{port}/",
        f"http://127.0.0.1:{port}/",
        f"http://0.0.0.0:{port}/",  # Linux connects 0.0.0.0 to the local host
        f"http://localhost:{port}/",
        f"http://loopback.test:{port}/",  # a DNS name that resolves to 127.0.0.1 (fake_dns)
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        f"http://[::1]:{port}/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://10.0.0.1/",
    ]


# What the fake DNS answers (everything else: the name does not exist).
FAKE_DNS = {
    "localhost": ["127.0.0.1", "::1"],
    "loopback.test": ["127.0.0.1"],
    "public.test": ["93.184.216.34"],
    "metadata.test": ["169.254.169.254"],
}


@pytest.fixture
def fake_dns() -> Iterator[dict[str, list[str]]]:
    """Play DNS through the outbound policy's resolver hook; tests may edit the answers (a
    rebinding name changes what it resolves to between registration and call)."""
    from apps.core import outbound

    answers = {name: list(addresses) for name, addresses in FAKE_DNS.items()}

    def resolve(host: str, port: int) -> list[str]:
        if host.lower() not in answers:
            raise outbound.ResolutionFailed(f"Could not resolve host '{host}'.")
        return answers[host.lower()]

    with outbound.override_resolver(resolve):
        yield answers
