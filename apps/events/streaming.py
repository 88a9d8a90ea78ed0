"""Server-Sent Events from the event log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse

from apps.events import types as ev
from apps.events.selectors import events_after
from apps.events.services import envelope

POLL_SECONDS = 0.05
HEARTBEAT_SECONDS = 15.0


def sse_frame(message: dict) -> str:
    return f"id: {message['id']}\nevent: {message['type']}\ndata: {json.dumps(message, separators=(',', ':'))}\n\n"


def _fetch(tenant, after_id: int, turn_id) -> list:
    return list(events_after(tenant=tenant, after_id=after_id, turn_id=turn_id))


async def turn_event_frames(*, tenant, turn_id, after_id: int = 0, timeout: float = 600.0) -> AsyncIterator[str]:
    """Every event of one turn after `after_id`, live, until the turn's final event (or timeout).

    Reads the log rather than the channel layer: it is ordered, complete, and a client that
    reconnects with Last-Event-ID gets exactly what it missed. An async generator, because
    Django under ASGI would read a synchronous one to the end before sending anything.
    """
    deadline = time.monotonic() + timeout
    last_sent = time.monotonic()
    while time.monotonic() < deadline:
        batch = await sync_to_async(_fetch)(tenant, after_id, turn_id)
        for event in batch:
            message = envelope(event)
            after_id = event.id
            yield sse_frame(message)
            last_sent = time.monotonic()
            if event.type in ev.FINAL_TYPES:
                return
        if time.monotonic() - last_sent >= HEARTBEAT_SECONDS:
            yield ": heartbeat\n\n"
            last_sent = time.monotonic()
        if not batch:
            await asyncio.sleep(POLL_SECONDS)
    yield 'event: timeout\ndata: {"error": "The turn did not finish in time; read its events again later."}\n\n'


def sse_response(frames: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(frames, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx and similar proxies must not buffer the stream
    return response
