"""Backpressure for long-lived streams: know when a client stops reading, and never buffer for it
without bound.

An ASGI `send()` under daphne returns at once: the bytes go into Twisted's write buffer for the
socket, which grows as long as the server writes, however slowly the client reads. So awaiting
`send()` is no backpressure at all. Twisted does report the buffer's state to a registered
*producer* (its public IPushProducer contract): `pauseProducing()` when the buffer passes its
size (64 KiB), `resumeProducing()` once it has drained. `TransportFlow` is such a producer
that turns the two calls into an asyncio event senders wait on.

Reaching the producer API needs daphne's protocol object, which daphne hands to the
application only as the first argument of its `send` partial (`partial(server.handle_reply,
protocol)`). Under daphne both a WebSocket and an HTTP response sit on twisted.web's
HTTPChannel (a WebSocket is an upgraded HTTP connection), which is the transport's producer
and passes pause/resume on to one producer registered with it; that is where ours goes. Under
any other server (or channels' test communicator) there is no such object and
`TransportFlow.from_send` returns None: servers that await the socket's drain in `send()`
(uvicorn) already give backpressure that way.

Daphne runs Twisted on the asyncio loop (asyncioreactor), so the producer callbacks run on the
loop's thread and may touch asyncio objects directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from django.conf import settings

try:  # daphne's WebSocket protocol is autobahn's (pinned in requirements/base.txt)
    from autobahn.websocket.protocol import PreparedMessage as _PreparedMessage
except ImportError:  # pragma: no cover - another ASGI server, without autobahn
    _PreparedMessage = None

logger = logging.getLogger(__name__)

SCOPE_KEY = "agentplatform.transport_flow"


class TransportFlow:
    """A Twisted push producer whose state is an asyncio.Event: set while the client keeps up."""

    def __init__(self, protocol) -> None:
        self._protocol = protocol
        self._writable = asyncio.Event()
        self._writable.set()
        self._registered = None  # what we registered with
        self.stopped = False

    @classmethod
    def from_send(cls, send) -> TransportFlow | None:
        protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
        if protocol is None or not hasattr(protocol, "registerProducer"):
            return None
        return cls(protocol)

    def attach(self) -> bool:
        if self._registered is not None:
            return True
        # Under daphne a WebSocket is an upgraded HTTP connection: its transport's producer is
        # still twisted.web's HTTPChannel, which passes pause/resume on to one registered
        # producer. autobahn's own registerProducer would collide with it.
        channel = getattr(getattr(self._protocol, "transport", None), "producer", None)
        target = channel if channel is not None and hasattr(channel, "registerProducer") else self._protocol
        try:
            target.registerProducer(self, True)
        except Exception as exc:  # noqa: BLE001 - another producer, or the connection is gone
            logger.debug("no transport flow control: %s", exc)
            return False
        self._registered = target
        return True

    def detach(self) -> None:
        target, self._registered = self._registered, None
        if target is not None:
            with contextlib.suppress(Exception):
                target.unregisterProducer()
        self._writable.set()

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    async def wait_writable(self, timeout: float | None = None) -> bool:
        """True once the client has drained the buffer; False if `timeout` passed first."""
        if self._writable.is_set():
            return True
        try:
            await asyncio.wait_for(self._writable.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def send_prepared(self, frame) -> bool:
        """Write an already framed message (see `prepare_frame`) straight to the WebSocket, past
        the ASGI send chain; False when the socket is not open (the caller sends the usual way,
        which knows how to fail)."""
        protocol = self._protocol
        if self.stopped or getattr(protocol, "state", None) != getattr(protocol, "STATE_OPEN", None):
            return False
        protocol.sendPreparedMessage(frame)
        return True

    def patient_close(self, seconds: float) -> None:
        """Give the closing handshake `seconds` instead of autobahn's default one: a slow reader
        must get through what is still buffered before it can see the close frame (and the
        notice before it); cut off after one second it would lose both."""
        if hasattr(self._protocol, "closeHandshakeTimeout"):
            self._protocol.closeHandshakeTimeout = seconds

    def abort(self) -> None:
        """Drop the TCP connection without flushing (a client that stopped reading)."""
        transport = getattr(self._protocol, "transport", None)
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.abortConnection()

    # --- IPushProducer (called by Twisted on the loop's thread) ---------------------------------

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's interface
        self._writable.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self._writable.set()

    def stopProducing(self) -> None:  # noqa: N802 - the connection is gone; let senders run out
        self.stopped = True
        self._writable.set()


def prepare_frame(text: str):
    """The WebSocket frame of `text`, built once for every socket it goes to (autobahn's broadcast
    API: a `PreparedMessage` keeps the payload too, for connections that negotiated compression).
    None where autobahn is not there (another ASGI server): then each socket sends through ASGI.

    Why: a send through ASGI costs each socket Channels' and daphne's send layers, a UTF-8 encode
    and the framing; with 50 sockets of one tenant that was ~60 µs each, so the last socket of a
    fan-out got the event 3 ms after the first.
    """
    if _PreparedMessage is None:
        return None
    return _PreparedMessage(text.encode(), False, False, False)


class TransportFlowMiddleware:
    """Outermost WebSocket middleware: puts the connection's TransportFlow (or None) in the scope
    before other middleware wraps `send` and hides daphne's protocol."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        return await self.inner({**scope, SCOPE_KEY: TransportFlow.from_send(send)}, receive, send)


class StreamFlowMiddleware:
    """HTTP middleware for text/event-stream responses under daphne: each body chunk waits until
    the client has drained the previous ones, so a stream never runs ahead of its reader (the SSE
    generator then simply stops reading the log). A client that reads nothing for
    STREAM_STALL_SECONDS while data waits has its connection dropped; it reconnects with
    Last-Event-ID. Other responses pass untouched."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        flow = TransportFlow.from_send(send)
        if flow is None:
            return await self.inner(scope, receive, send)
        streaming = False

        async def flow_send(message):
            nonlocal streaming
            kind = message["type"]
            if kind == "http.response.start":
                content_type = next(
                    (value for name, value in message.get("headers") or () if name.lower() == b"content-type"), b""
                )
                streaming = content_type.startswith(b"text/event-stream") and flow.attach()
            elif streaming and kind == "http.response.body":
                if not message.get("more_body", False):
                    flow.detach()
                    streaming = False
                elif not await flow.wait_writable(settings.STREAM_STALL_SECONDS):
                    logger.info("dropping a stream whose client stopped reading")
                    flow.abort()
                    return None
            return await send(message)

        try:
            return await self.inner(scope, receive, flow_send)
        finally:
            if streaming:
                flow.detach()


class Overflow(Exception):
    """The outbox is full: the client is too slow for the events it asked for."""


class Outbox:
    """What one socket still has to send, bounded, drained by one task in order.

    Live events are `offer()`ed (never waits: a full outbox returns False and the caller tells
    the client to resume); replayed ones are `put()` (waits for room: replay goes at the
    client's pace). The drainer waits for the transport to be writable before each send, so
    the bound holds end to end: at most `limit` messages here plus Twisted's 64 KiB buffer.
    """

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        limit: int,
        flow: TransportFlow | None = None,
    ) -> None:
        self._send = send
        self.limit = max(1, limit)
        self.flow = flow
        self._items: deque[tuple[int | None, str]] = deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task | None = None
        self._busy = False  # a send is under way
        self.last_id: int | None = None  # the highest event id handed to the transport

    def start(self) -> None:
        if self.flow is not None:
            self.flow.attach()
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._items.clear()
        self._room.set()
        if self.flow is not None:
            self.flow.detach()

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, text: str, event_id: int | None = None, *, reserve: int = 0) -> bool:
        """Queue without waiting; False when full. `reserve` lets small replies pass a full
        queue by that many (a replay keeps it full by design; a pong must still get through)."""
        if len(self._items) >= self.limit + reserve:
            return False
        self._append(event_id, text)
        return True

    async def put(self, text: str, event_id: int | None = None) -> None:
        while len(self._items) >= self.limit:
            self._room.clear()
            await self._room.wait()
        self._append(event_id, text)

    def can_send_now(self) -> bool:
        """Nothing queued, nothing being sent, and a transport known to take it without waiting:
        the caller may send directly, saving the sender task a wake-up per message."""
        return (
            not self._items
            and not self._busy
            and self._task is not None
            and self.flow is not None
            and self.flow.writable
        )

    def send_frame_now(self, frame, event_id: int | None = None) -> bool:
        """Send a prepared frame synchronously when `can_send_now()`; False when it could not go
        this way (no frame, or the socket is not open) and the caller must use `send_now`."""
        if frame is None or not self.flow.send_prepared(frame):
            return False
        self._sent(event_id)
        return True

    async def send_now(self, text: str, event_id: int | None = None) -> None:
        self._busy = True
        try:
            await self._send(text)
        finally:
            self._busy = False
        self._sent(event_id)

    def clear(self) -> None:
        self._items.clear()
        self._room.set()

    def pending_ids(self) -> list[int]:
        return [event_id for event_id, _ in self._items if event_id is not None]

    def _append(self, event_id: int | None, text: str) -> None:
        self._items.append((event_id, text))
        self._ready.set()

    async def _drain(self) -> None:
        while True:
            while not self._items:
                self._ready.clear()
                await self._ready.wait()
            if self.flow is not None and not self.flow.writable:
                await self.flow.wait_writable()
            if not self._items:  # cleared while we waited
                continue
            event_id, text = self._items.popleft()
            if len(self._items) < self.limit:
                self._room.set()
            self._busy = True
            try:
                await self._send(text)
            finally:
                self._busy = False
            self._sent(event_id)

    def _sent(self, event_id: int | None) -> None:
        if event_id is not None and (self.last_id is None or event_id > self.last_id):
            self.last_id = event_id
