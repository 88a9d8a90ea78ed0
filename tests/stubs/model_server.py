"""A real HTTP server on loopback that speaks the OpenAI and Anthropic wire protocols.

Tests point the real `openai` and `anthropic` SDKs at it, so what is exercised is the SDKs'
own request building, SSE parsing, retries and timeouts, not a mock of them:

    with start_stub_server() as server:
        server.script([Reply(text="hi"), Reply(tool_calls=[("calculator", {"expression": "1+1"})])])
        OpenAI(base_url=server.openai_base_url, api_key="x").chat.completions.create(...)
        assert server.requests[0]["messages"] == [...]

Routes (both SDKs use the same /v1 prefix; a request carrying `anthropic-version` gets the
Anthropic shapes on the shared `GET /v1/models`):

- `POST /v1/chat/completions`: OpenAI Chat Completions, JSON or SSE (`stream: true`), tool-call
  deltas, a usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`.
- `POST /v1/messages`: Anthropic Messages, JSON or SSE (message_start, content_block_start /
  _delta / _stop for text and tool_use, message_delta with stop_reason and usage, message_stop).
- `GET /v1/models`: the model list of either API (`server.models`).

Every request, whatever its route, takes the next `Reply` of the script (or `default_reply`
when the script is empty), so a test scripts exactly what the SDK sees, retries included.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

ToolCallScript = tuple[str, dict[str, Any] | str]


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request.

    text: the answer text, streamed in `chunks` (default: word by word).
    tool_calls: `(name, arguments)` pairs; a `str` argument is sent verbatim (e.g. broken JSON).
    status: an HTTP error status (>= 400) answers with the API's error body and `error` message.
    delay: seconds to wait before answering anything (longer than the client timeout: a timeout).
    chunk_delay: seconds between streamed chunks.
    usage: `(input_tokens, output_tokens)`; default: characters / 4 of the request and answer.
    finish_reason: overrides the protocol's natural one (e.g. "length" / "max_tokens").
    """

    text: str = ""
    tool_calls: Sequence[ToolCallScript] = ()
    status: int = 200
    error: str = "stub error"
    delay: float = 0.0
    chunks: Sequence[str] | None = None
    chunk_delay: float = 0.0
    usage: tuple[int, int] | None = None
    finish_reason: str = ""

    def text_chunks(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\S+\s*|\s+", self.text)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def _arguments_json(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _halves(value: str) -> list[str]:
    """Tool arguments arrive in two fragments, so clients must really accumulate them."""
    middle = len(value) // 2
    return [part for part in (value[:middle], value[middle:]) if part]


class StubModelServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.models: list[str] = ["stub-small", "stub-large"]
        self.default_reply = Reply(text="Hello from the stub model.")
        self.requests: list[dict[str, Any]] = []  # parsed bodies of every POST, in order
        self.log: list[RecordedRequest] = []  # every request, GETs included
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._counter = 0
        self._connections: set[socket.socket] = set()
        handler = type("Handler", (_Handler,), {"stub": self})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url  # the SDK appends /v1/messages itself

    def script(self, replies: Sequence[Reply]) -> None:
        """Replace the queue of replies; each request takes the next one."""
        with self._lock:
            self._script = deque(replies)

    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def start(self) -> StubModelServer:
        # A short poll interval: stop() waits for the loop to notice, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="stub-model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop as a crashed server would: no new connections, and the kept-alive ones cut.
        Idempotent, so a test may stop the server to simulate an outage before teardown does."""
        if self._stopping.is_set():
            return
        self._stopping.set()  # wakes replies sleeping in `delay`
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- used by the handler -------------------------------------------------------------------

    def _next(self, record: RecordedRequest) -> tuple[Reply, int]:
        with self._lock:
            self.log.append(record)
            if record.method == "POST":
                self.requests.append(record.body)
            self._counter += 1
            reply = self._script.popleft() if self._script else self.default_reply
            return reply, self._counter

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


@contextlib.contextmanager
def start_stub_server() -> Iterator[StubModelServer]:
    """The server on a random loopback port for the duration of the block."""
    server = StubModelServer().start()
    try:
        yield server
    finally:
        server.stop()


class _Handler(BaseHTTPRequestHandler):
    stub: StubModelServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        with self.stub._lock:
            self.stub._connections.add(self.connection)

    def finish(self) -> None:
        with self.stub._lock:
            self.stub._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    # --- dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        reply, _ = self.stub._next(self._record({}))
        if self.path.rstrip("/") != "/v1/models":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        self.stub._sleep(reply.delay)
        if reply.status >= 400:
            self._error(reply)
            return
        if self._is_anthropic():
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in self.stub.models
            ]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            self._json(200, {"data": data, "has_more": False, "first_id": first, "last_id": last})
        else:
            data = [{"id": m, "object": "model", "created": 1735689600, "owned_by": "stub"} for m in self.stub.models]
            self._json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        reply, number = self.stub._next(self._record(body))
        self.stub._sleep(reply.delay)
        route = self.path.rstrip("/")
        if route not in ("/v1/chat/completions", "/v1/messages"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        if reply.status >= 400:
            self._error(reply)
            return
        try:
            if route == "/v1/chat/completions":
                self._openai(body, reply, number)
            else:
                self._anthropic(body, reply, number)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout, cancel): nothing left to tell it

    def _record(self, body: dict[str, Any]) -> RecordedRequest:
        return RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)

    def _is_anthropic(self) -> bool:
        return "anthropic-version" in {k.lower() for k in self.headers}

    # --- plumbing ------------------------------------------------------------------------------

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _error(self, reply: Reply) -> None:
        if self._is_anthropic() or self.path.startswith("/v1/messages"):
            kind = {429: "rate_limit_error", 529: "overloaded_error", 401: "authentication_error"}.get(
                reply.status, "api_error" if reply.status >= 500 else "invalid_request_error"
            )
            self._json(reply.status, {"type": "error", "error": {"type": kind, "message": reply.error}})
        else:
            kind = "server_error" if reply.status >= 500 else "invalid_request_error"
            self._json(reply.status, {"error": {"message": reply.error, "type": kind, "param": None, "code": None}})

    def _start_stream(self) -> None:
        # No Content-Length: the body ends when the connection closes, as HTTP/1.1 allows.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, data: dict[str, Any] | str, *, event: str | None = None) -> None:
        payload = data if isinstance(data, str) else json.dumps(data)
        prefix = f"event: {event}\n" if event else ""
        self.wfile.write(f"{prefix}data: {payload}\n\n".encode())
        self.wfile.flush()

    def _usage(self, body: dict[str, Any], reply: Reply) -> tuple[int, int]:
        if reply.usage is not None:
            return reply.usage
        sent = json.dumps(body.get("messages", [])) + json.dumps(body.get("system", ""))
        answered = reply.text + "".join(_arguments_json(args) for _, args in reply.tool_calls)
        return _tokens(len(sent)), _tokens(len(answered))

    # --- OpenAI Chat Completions ---------------------------------------------------------------

    def _openai(self, body: dict[str, Any], reply: Reply, number: int) -> None:
        model = body.get("model", "stub-model")
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        prompt_tokens, completion_tokens = self._usage(body, reply)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        calls = [
            {
                "id": f"call_{number}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": _arguments_json(a)},
            }
            for i, (name, a) in enumerate(reply.tool_calls)
        ]
        base = {"id": f"chatcmpl-{number}", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            message = {"role": "assistant", "content": reply.text or None}
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            self._json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
            return

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            return {**base, "object": "chat.completion.chunk", "choices": [choice]}

        self._start_stream()
        self._sse(chunk({"role": "assistant", "content": ""}))
        for piece in reply.text_chunks():
            self.stub._sleep(reply.chunk_delay)
            self._sse(chunk({"content": piece}))
        for index, call in enumerate(calls):
            head = {"index": index, "id": call["id"], "type": "function"}
            self._sse(
                chunk({"tool_calls": [{**head, "function": {"name": call["function"]["name"], "arguments": ""}}]})
            )
            for fragment in _halves(call["function"]["arguments"]):
                self.stub._sleep(reply.chunk_delay)
                self._sse(chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}))
        self._sse(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            self._sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        self._sse("[DONE]")

    # --- Anthropic Messages --------------------------------------------------------------------

    def _anthropic(self, body: dict[str, Any], reply: Reply, number: int) -> None:
        model = body.get("model", "stub-model")
        natural = {"stop": "end_turn", "length": "max_tokens"}
        stop_reason = natural.get(reply.finish_reason, reply.finish_reason) or (
            "tool_use" if reply.tool_calls else "end_turn"
        )
        input_tokens, output_tokens = self._usage(body, reply)
        uses = [(f"toolu_{number}_{i}", name, args) for i, (name, args) in enumerate(reply.tool_calls)]
        if not body.get("stream"):
            content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
            content += [
                {"type": "tool_use", "id": uid, "name": name, "input": args if isinstance(args, dict) else {}}
                for uid, name, args in uses
            ]
            self._json(
                200,
                {
                    "id": f"msg_{number}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                },
            )
            return

        def send(event: str, data: dict[str, Any]) -> None:
            self._sse({"type": event, **data}, event=event)

        self._start_stream()
        message = {
            "id": f"msg_{number}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }
        send("message_start", {"message": message})
        send("ping", {})
        index = 0
        if reply.text:
            send("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
            for piece in reply.text_chunks():
                self.stub._sleep(reply.chunk_delay)
                send("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}})
            send("content_block_stop", {"index": index})
            index += 1
        for uid, name, args in uses:
            block = {"type": "tool_use", "id": uid, "name": name, "input": {}}
            send("content_block_start", {"index": index, "content_block": block})
            for fragment in _halves(_arguments_json(args)):
                self.stub._sleep(reply.chunk_delay)
                delta = {"type": "input_json_delta", "partial_json": fragment}
                send("content_block_delta", {"index": index, "delta": delta})
            send("content_block_stop", {"index": index})
            index += 1
        send(
            "message_delta",
            {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": output_tokens}},
        )
        send("message_stop", {})


@pytest.fixture
def model_server(settings) -> Iterator[StubModelServer]:
    """A fresh stub per test (an empty script, no recorded requests). Import it into a conftest
    (`from tests.stubs.model_server import model_server`) to use it there.

    The stub listens on loopback, which the outbound policy refuses for tenant URLs unless the
    operator allows it; a test that talks to the stub allows it (as `make run` does), and only
    for that test."""
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    with start_stub_server() as server:
        yield server
