"""Requests Twisted refuses before Django sees them get a JSON error, not a closed socket
(a live daphne; apps/core/server_limits.py)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from tests.conftest import create_key
from tests.events import live

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def daphne_server(django_db_setup, django_db_blocker):
    yield from live.serve_daphne()


def _raw_exchange(server: live.LiveDaphne, request: bytes) -> tuple[str, dict, dict]:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received, "the server closed the connection without a response"
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return status_line, headers, json.loads(body)


def test_request_line_over_16_kib_is_a_json_414(daphne_server):
    request = b"GET /api/audit/log?since=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
    status, headers, body = _raw_exchange(daphne_server, request)
    assert status == "HTTP/1.1 414 URI Too Long"
    assert headers["Content-Type"] == "application/json"
    assert body["error"] == "URI too long"
    assert "POST body" in body["message"]


def test_one_header_over_16_kib_is_a_json_431(daphne_server):
    request = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n"
    status, _, body = _raw_exchange(daphne_server, request)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert body["error"] == "Request headers too large"


def test_headers_over_16_kib_in_all_are_a_json_431(daphne_server):
    many = b"".join(b"X-H%d: " % i + b"c" * 1000 + b"\r\n" for i in range(20))
    status, _, body = _raw_exchange(daphne_server, b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n")
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert "in all" in body["message"]


def test_malformed_request_line_is_a_json_400(daphne_server):
    status, _, body = _raw_exchange(daphne_server, b"NONSENSE\r\n\r\n")
    assert status == "HTTP/1.1 400 Bad Request"
    assert body["error"] == "Bad request"


@pytest.mark.django_db(transaction=True)
def test_ws_message_nested_past_the_depth_limit_is_an_error_notice_and_the_socket_stays_open(daphne_server, tenant):
    _, key = create_key(tenant)

    async def scenario():
        sock = await live.open_socket(daphne_server, key=key)
        # 2,000 levels: within the 4,096-character frame cap, past the decoder's recursion limit.
        await sock.connection.send("[" * 2000 + "]" * 2000)
        too_deep = await sock.notice("error")
        await sock.send({"action": "ping", "ref": 1})
        pong = await sock.notice("pong")
        await sock.close()
        return too_deep, pong

    too_deep, pong = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert too_deep["error"] == "Invalid JSON"
    assert pong == {"type": "pong", "ref": 1}
