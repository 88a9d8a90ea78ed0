"""Server-Sent Events from the event log.

SSE streams read the log, not the channel layer: the log is ordered and complete, a client
that reconnects with Last-Event-ID gets exactly what it missed, and a stream that waits for a
slow client simply stops reading (nothing piles up for it; see transport.StreamFlowMiddleware).
They do not poll on a timer, though: the process's hub (live.py) wakes a stream when a push for
its tenant (and session, or turn) arrives, so an idle stream costs one query per
SSE_FALLBACK_POLL_SECONDS (the net under a lost push) and a busy one a query per push burst.

Generators are async because Django under ASGI reads a synchronous iterator to its end
before sending anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse

from apps.events import types as ev
from apps.events.live import hub, in_thread
from apps.events.selectors import events_after
from apps.events.services import envelope

logger = logging.getLogger(__name__)

RETRY_MS = 1000  # EventSource waits this long before reconnecting
BATCH = 500
# Two publishers can commit ids out of order (101 visible before 100). A stream looks back
# this far for an id below its position that it has not sent yet.
LATE_COMMIT_WINDOW_SECONDS = 2.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_frame(message: dict, cursor: int | None = None) -> str:
    """`id:` is the stream's resume position (the highest id sent), which is the event's own id
    unless a late commit is delivered after a higher one."""
    event_id = message["id"] if cursor is None else cursor
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {message['type']}\ndata: {json.dumps(message, separators=(',', ':'))}\n\n"


def _fetch(tenant, after_id: int, turn_id) -> list:
    return list(events_after(tenant=tenant, after_id=after_id, turn_id=turn_id, limit=BATCH))


class _TurnStreamListener:
    """One turn's stream, as the hub sees it: woken by any event of that turn. It lasts one
    turn (at most the caller's timeout), so no system_status and no credential re-checks."""

    ticks = False

    def __init__(self, tenant_id: str, turn_id: str) -> None:
        self.tenant_id = tenant_id
        self.turn_id = turn_id
        self.wake = asyncio.Event()

    def deliver(self, event: dict[str, Any], text: str, frame: Any = None) -> None:
        if event.get("turn_id") == self.turn_id:
            self.wake.set()

    def on_status(self, envelope: dict[str, Any], text: str, frame: Any = None) -> None:
        return None

    def credentials(self) -> tuple[str | None, str | None]:
        return (None, None)

    async def revoke(self) -> None:
        self.wake.set()


HEARTBEAT_FRAME = ": heartbeat\n\n"


def _heartbeat_due(last_write: float, heartbeat: float) -> bool:
    return time.monotonic() - last_write >= heartbeat


async def _wait_for_push(listener, last_write: float, heartbeat: float, at_most: float) -> None:
    """Sleep until the hub pushes something for this stream, the next heartbeat is due, or
    `at_most` seconds (the fallback read, the deadline) have passed."""
    idle = time.monotonic() - last_write
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener.wake.wait(), max(0.0, min(heartbeat - idle, at_most)))


async def turn_event_frames(*, tenant, turn_id, after_id: int = 0, timeout: float = 600.0) -> AsyncIterator[str]:
    """Every event of one turn after `after_id`, live, until the turn's final event (or timeout).

    Subscribed (through the hub, barrier included) before the first read, so nothing falls
    between; then the log is read on each push of the turn, and every SSE_FALLBACK_POLL_SECONDS
    without one. A turn's events come from one worker in order, so a simple cursor is exact here.
    """
    heartbeat = settings.SSE_HEARTBEAT_SECONDS
    fallback = settings.SSE_FALLBACK_POLL_SECONDS
    listener = _TurnStreamListener(str(getattr(tenant, "pk", tenant)), str(turn_id))
    local = hub()
    deadline = time.monotonic() + timeout
    try:
        try:
            await local.add(listener)
        except Exception:  # no channel layer (Redis down): the fallback poll still streams
            logger.warning("turn stream without live wake-ups", exc_info=True)
        last_sent = time.monotonic()
        while (left := deadline - time.monotonic()) > 0:
            listener.wake.clear()  # before reading: a push during the read wakes us again
            batch = await in_thread(_fetch)(tenant, after_id, turn_id)
            for event in batch:
                after_id = event.id
                yield sse_frame(envelope(event))
                last_sent = time.monotonic()
                if event.type in ev.FINAL_TYPES:
                    return
            if len(batch) == BATCH:
                continue
            if _heartbeat_due(last_sent, heartbeat):
                yield HEARTBEAT_FRAME
                last_sent = time.monotonic()
            await _wait_for_push(listener, last_sent, heartbeat, min(fallback, left))
        yield 'event: timeout\ndata: {"error": "The turn did not finish in time; read its events again later."}\n\n'
    finally:
        local.remove(listener)


class LogCursor:
    """Where a stream is in the log: the highest id sent, plus the ids sent in the last
    LATE_COMMIT_WINDOW_SECONDS, so an id that commits after a higher one is still found (and
    sent once). Below `floor` everything has settled."""

    def __init__(self, after_id: int, window: float = LATE_COMMIT_WINDOW_SECONDS) -> None:
        self.position = self.floor = after_id
        self.window = window
        self._recent: deque[tuple[float, int]] = deque()

    def query(self) -> tuple[int, list[int]]:
        """(read events after this id, except these ids)."""
        horizon = time.monotonic() - self.window
        while self._recent and self._recent[0][0] < horizon:
            self.floor = max(self.floor, self._recent.popleft()[1])
        return self.floor, [event_id for _, event_id in self._recent if event_id > self.floor]

    def sent(self, event_id: int) -> None:
        self.position = max(self.position, event_id)
        self._recent.append((time.monotonic(), event_id))


class _StreamListener:
    """An SSE stream as the hub sees it: woken by its tenant's (or session's) pushes, given
    system_status, cut off when its key is revoked."""

    def __init__(self, tenant_id: str, session_id: str | None, credentials: tuple, status: bool) -> None:
        self.tenant_id = tenant_id
        self.session_id = session_id
        self._credentials = credentials
        self._status = status
        self.wake = asyncio.Event()
        self.statuses: deque[str] = deque(maxlen=2)
        self.revoked = False

    def deliver(self, event: dict[str, Any], text: str, frame: Any = None) -> None:
        if self.session_id is None or event.get("session_id") == self.session_id:
            self.wake.set()  # the stream reads the log itself: order, replay and backpressure for free

    def credentials(self) -> tuple[str | None, str | None]:
        return self._credentials

    def on_status(self, envelope: dict[str, Any], text: str, frame: Any = None) -> None:
        if self._status:
            self.statuses.append(f"event: {envelope['type']}\ndata: {text}\n\n")
            self.wake.set()

    async def revoke(self) -> None:
        self.revoked = True
        self.wake.set()


def _read(tenant_id: str, session_id: str | None, after_id: int, exclude: list[int]) -> list[dict]:
    events = events_after(tenant=tenant_id, after_id=after_id, session_id=session_id, exclude_ids=exclude, limit=BATCH)
    return [envelope(event) for event in events]


async def event_stream_frames(
    *,
    tenant_id: str,
    session_id: str | None = None,
    after_id: int = 0,
    credentials: tuple[str | None, str | None] = (None, None),
    with_status: bool = False,
) -> AsyncIterator[str]:
    """A tenant's (or one session's) events after `after_id`, then live, until the client goes.

    Heartbeat comments keep proxies from timing the stream out; the tenant-wide stream also
    carries system_status (without an `id:`, so it never moves the resume position).
    """
    heartbeat = settings.SSE_HEARTBEAT_SECONDS
    fallback = settings.SSE_FALLBACK_POLL_SECONDS
    listener = _StreamListener(tenant_id, session_id, credentials, with_status)
    local = hub()
    cursor = LogCursor(after_id)
    try:
        try:
            await local.add(listener)
        except Exception:  # no channel layer (Redis down): the fallback poll still streams
            logger.warning("SSE stream without live wake-ups", exc_info=True)
        yield f"retry: {RETRY_MS}\n\n"  # also sends the headers at once
        last_write = time.monotonic()
        while not listener.revoked:
            listener.wake.clear()  # before reading: a push during the read wakes us again
            floor, exclude = cursor.query()
            batch = await in_thread(_read)(tenant_id, session_id, floor, exclude)
            frames = []
            for message in batch:
                cursor.sent(message["id"])
                frames.append(sse_frame(message, cursor.position))
            while listener.statuses:
                frames.append(listener.statuses.popleft())
            if frames:
                yield "".join(frames)
                last_write = time.monotonic()
            if len(batch) == BATCH:
                continue
            if _heartbeat_due(last_write, heartbeat):
                yield HEARTBEAT_FRAME
                last_write = time.monotonic()
            await _wait_for_push(listener, last_write, heartbeat, fallback)
        yield 'event: error\ndata: {"error": "Unauthorized", "message": "Credentials revoked."}\n\n'
    finally:
        local.remove(listener)


def event_backlog_response(*, tenant_id: str, session_id: str | None, after_id: int) -> HttpResponse:
    """Without ASGI (WSGI, the test client) a response cannot stream: send what the log holds
    after `after_id` and end. EventSource reconnects after `retry` with Last-Event-ID, which
    degrades the stream to polling instead of holding a worker thread forever."""
    frames = [f"retry: {RETRY_MS}\n\n"]
    frames += [sse_frame(message) for message in _read(tenant_id, session_id, after_id, [])]
    response = HttpResponse("".join(frames), content_type="text/event-stream; charset=utf-8")
    for name, value in SSE_HEADERS.items():
        response[name] = value
    return response


def sse_response(frames: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(frames, content_type="text/event-stream; charset=utf-8")
    for name, value in SSE_HEADERS.items():
        response[name] = value  # no-cache; nginx and similar proxies must not buffer the stream
    return response
