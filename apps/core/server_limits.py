"""JSON answers for requests daphne's HTTP layer (Twisted) refuses before Django sees them.

Twisted reads the request line and each header with a 16 KiB line limit
(LineReceiver.MAX_LENGTH) and caps all headers at 16 KiB (HTTPChannel.totalHeadersSize). Over
the line limit it closed the socket without a word; over the total (and for any malformed
request) it wrote a bare 400. A client then sees a reset connection and retries, or cannot tell
what was wrong. They now answer in our JSON error shape: 414 for a request line (URL) over the
limit, 431 for headers, 400 for a malformed request.

Installed from agentplatform/asgi.py, which daphne imports before it starts listening.
"""

from __future__ import annotations

import json

from twisted.web import http


def _respond(channel, status: bytes, error: str, message: str) -> None:
    body = json.dumps({"error": error, "message": message}).encode()
    channel.transport.write(
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    channel.loseConnection()


def _line_length_exceeded(self, line):  # noqa: ARG001 - Twisted's signature
    if getattr(self, "_HTTPChannel__first_line", 1):
        _respond(
            self,
            b"414 URI Too Long",
            "URI too long",
            f"The request line is over {self.MAX_LENGTH} bytes; send long input in a POST body.",
        )
    else:
        _respond(
            self,
            b"431 Request Header Fields Too Large",
            "Request headers too large",
            f"A header line is over {self.MAX_LENGTH} bytes.",
        )


def _bad_request(self):
    if self._receivedHeaderSize > self.totalHeadersSize:
        _respond(
            self,
            b"431 Request Header Fields Too Large",
            "Request headers too large",
            f"The request line and headers are over {self.totalHeadersSize} bytes in all.",
        )
    else:  # a malformed request line or header, a bad Content-Length, ...
        _respond(self, b"400 Bad Request", "Bad request", "The HTTP request is malformed.")


def install() -> None:
    http.HTTPChannel.lineLengthExceeded = _line_length_exceeded
    http.HTTPChannel._respondToBadRequestAndDisconnect = _bad_request
