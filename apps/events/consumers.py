"""/ws: a tenant's events, live, with replay from the log (protocol: docs/realtime.md).

publish() pushes every event to the group `tenant.<id>`; this process's hub (live.py) is in
the group of every tenant with a socket here and hands each event to the tenant's sockets,
which pass it on unless a subscription narrows it. A socket's outbox is bounded
(WS_SEND_QUEUE_MAX) and drained at the client's pace (transport.py); when a live event finds
it full, the client gets {"type": "overflow", "resume_from": N} and close 4408.

Replay (`?last_event_id=N` or {"action": "resume"}): the socket already receives live events,
and holds them while the log is read from N in id order; when the read catches up, the held
events follow, minus those the replay sent and those the client had. The ids of a replay are
remembered for a few seconds more, since a push can arrive after the read that already
returned its event. Pushes that arrive out of id order (two workers committing at the same
moment) are delivered, not dropped: nothing is ever lost to an id comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apps.core.parsers import loads_bounded
from apps.events.live import encode, hub, in_thread
from apps.events.selectors import events_after, oldest_event_id
from apps.events.services import envelope as event_envelope
from apps.events.transport import SCOPE_KEY, Outbox
from apps.events.ws_auth import (
    CLOSE_UNAUTHORIZED,
    SocketAuth,
    authenticate_socket,
    offered_subprotocol,
    query_params,
)

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400  # a malformed ?last_event_id= or ?session_id=
CLOSE_OVERFLOW = 4408  # the client fell WS_SEND_QUEUE_MAX messages behind; resume from `resume_from`

# After an overflow notice, how long a slow reader gets to drain its buffer before the close.
OVERFLOW_CLOSE_GRACE_SECONDS = 15.0
REPLAY_BATCH = 500
# How long a replay's ids stay known, to drop a push that arrives after the read returned it.
REPLAY_MEMORY_SECONDS = 10.0
REPLAY_MEMORY_MAX = 20_000
MAX_SUBSCRIPTIONS = 200
MAX_CLIENT_MESSAGE_CHARS = 4096
# Replies and notices may pass a full outbox by this many (a replay keeps it full by design).
CONTROL_HEADROOM = 50
ACTIONS = ("subscribe", "unsubscribe", "ping", "resume")


class _Seen:
    """Ids already sent by a replay, kept for REPLAY_MEMORY_SECONDS after it (bounded)."""

    def __init__(self, after_id: int) -> None:
        self.after_id = after_id  # the client had everything up to here
        self.ids: set[int] = set()
        self._order: deque[int] = deque()
        self.until: float | None = None

    def add(self, event_id: int) -> None:
        self.ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > REPLAY_MEMORY_MAX:
            self.ids.discard(self._order.popleft())

    def has(self, event_id: int) -> bool:
        return event_id <= self.after_id or event_id in self.ids

    @property
    def expired(self) -> bool:
        return self.until is not None and time.monotonic() > self.until


class EventsConsumer(AsyncWebsocketConsumer):
    # No channel of its own: the hub receives each event once per process and calls deliver().
    # (An alias that is not configured makes Channels skip the layer for this consumer.)
    channel_layer_alias = "none: events reach sockets through the hub"

    # --- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        self.principal = None
        self.outbox: Outbox | None = None
        self.subscriptions: set[str] = set()
        self.replay_task: asyncio.Task | None = None
        self.pending: list[tuple[dict, str]] | None = None  # live events held (connecting, replaying)
        self.lost_from: int | None = None  # the lowest held event dropped because the hold was full
        self.seen: _Seen | None = None
        self.closing = False
        self.registered = False
        self.ready = False  # `connected` is out

        auth: SocketAuth = await authenticate_socket(self.scope)
        # Accept first, even to refuse: a close before accepting is an HTTP 403 on the
        # handshake, and browsers would never see the code that says why.
        await self.accept(offered_subprotocol(self.scope))
        if auth.principal is None:
            await self._refuse(auth.close_code, "Unauthorized", auth.reason)
            return
        self.principal = auth.principal
        self.auth_via = auth.via
        self.tenant_id = str(auth.principal.tenant.pk)

        params = query_params(self.scope)
        try:
            after_id = _event_id(params["last_event_id"][0]) if params.get("last_event_id") else None
        except ValueError:
            await self._refuse(CLOSE_BAD_REQUEST, "Invalid last_event_id", "A non-negative integer event id.")
            return
        wanted = params.get("session_id", [])
        if wanted:
            unknown = await self._unknown_sessions(wanted)
            if unknown:
                await self._refuse(CLOSE_BAD_REQUEST, "Not found", f"No such session: {', '.join(unknown)}")
                return
            self.subscriptions = set(wanted)

        self.outbox = Outbox(self._send_text, limit=settings.WS_SEND_QUEUE_MAX, flow=self.scope.get(SCOPE_KEY))
        self.outbox.start()
        self.pending = []  # events from here on are held until `connected` is out
        self.registered = True
        await hub().add(self)  # returns once this process surely receives the tenant's pushes
        self._control("connected", tenant=self.tenant_id, auth=self.auth_via, subscriptions=sorted(self.subscriptions))
        self.ready = True
        if after_id is not None:
            self._start_replay(after_id, keep_held=True)
        else:
            held, self.pending = self.pending, None
            for event, text in held:
                self._queue(event, text)

    async def disconnect(self, code) -> None:
        if self.replay_task is not None:
            self.replay_task.cancel()
        if self.registered:
            hub().remove(self)
        if self.outbox is not None:
            await self.outbox.stop()

    async def _refuse(self, code: int, error: str, message: str) -> None:
        await self._send_text(encode({"type": "error", "error": error, "message": message}))
        await self.close(code=code)

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    def _control(self, kind: str, **fields: Any) -> None:
        """A reply or notice (no `id`: not an event). Queued behind what is already waiting."""
        if self.outbox is None or self.closing:
            return
        if not self.outbox.offer(encode({"type": kind, **fields}), reserve=CONTROL_HEADROOM):
            asyncio.get_running_loop().create_task(self._overflow())

    # --- client actions ---------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.outbox is None or self.closing:
            return
        if text_data is None or len(text_data) > MAX_CLIENT_MESSAGE_CHARS:
            self._error("Invalid message", f"Send JSON text frames of at most {MAX_CLIENT_MESSAGE_CHARS} characters.")
            return
        try:
            message = loads_bounded(text_data)
        except ValueError:
            self._error("Invalid JSON", "Could not parse the message as JSON.")
            return
        if not isinstance(message, dict) or message.get("action") not in ACTIONS:
            self._error("Unknown action", f"`action` is one of: {', '.join(ACTIONS)}.", ref=_ref(message))
            return
        action, ref = message["action"], _ref(message)
        if action == "ping":
            self._control("pong", **({"ref": ref} if ref is not None else {}))
        elif action == "resume":
            await self._resume(message, ref)
        else:
            await self._subscription(action, message, ref)

    async def _subscription(self, action: str, message: dict, ref) -> None:
        session_id = message.get("session_id")
        extra = {"ref": ref} if ref is not None else {}
        if not isinstance(session_id, str) or not session_id:
            self._error("Invalid session_id", "`session_id` is a session id string.", **extra)
            return
        if action == "unsubscribe":
            self.subscriptions.discard(session_id)
            self._control("unsubscribed", session_id=session_id, subscriptions=sorted(self.subscriptions), **extra)
            return
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            self._error("Too many subscriptions", f"At most {MAX_SUBSCRIPTIONS} sessions per socket.", **extra)
            return
        if await self._unknown_sessions([session_id]):
            # Another tenant's session looks exactly like one that does not exist.
            self._error("Not found", f"No such session: {session_id}", session_id=session_id, **extra)
            return
        self.subscriptions.add(session_id)
        self._control("subscribed", session_id=session_id, subscriptions=sorted(self.subscriptions), **extra)

    async def _resume(self, message: dict, ref) -> None:
        extra = {"ref": ref} if ref is not None else {}
        try:
            after_id = _event_id(message.get("last_event_id"))
        except ValueError:
            self._error("Invalid last_event_id", "`last_event_id` is a non-negative integer.", **extra)
            return
        if self.replay_task is not None:
            self.replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.replay_task
        self.outbox.clear()  # what was queued comes again from the log if the client lacks it
        self._start_replay(after_id)

    def _error(self, error: str, detail: str, **fields: Any) -> None:
        self._control("error", error=error, message=detail, **{k: v for k, v in fields.items() if v is not None})

    async def _unknown_sessions(self, session_ids: list[str]) -> list[str]:
        from apps.core.chat_sessions import session_ids_owned
        from apps.core.ids import parse_uuid

        parsed = {value: parse_uuid(value) for value in session_ids}
        valid = [u for u in parsed.values() if u is not None]

        def known() -> set[str]:
            # Sessions are conversations' (above events): asked through the port, not imported.
            return {str(pk) for pk in session_ids_owned(tenant_id=self.tenant_id, session_ids=valid)}

        found = await in_thread(known)() if valid else set()
        return [value for value, u in parsed.items() if u is None or str(u) not in found]

    # --- live events --------------------------------------------------------------------------

    def _wants(self, event: dict) -> bool:
        session_id = event.get("session_id")
        return not self.subscriptions or session_id is None or session_id in self.subscriptions

    def deliver(self, event: dict, text: str, frame: Any = None) -> Awaitable[None] | None:
        """Called by the hub for each event of the tenant; never waits. When the socket can take
        the message at once (daphne, nothing queued) it goes out here: as the prepared `frame`
        straight to the socket, else as a send returned for the hub to await."""
        if self.outbox is None or self.closing or event.get("tenant") != self.tenant_id or not self._wants(event):
            return None
        if self.pending is not None:  # connecting or replaying: hold it (it may be in the log read)
            self.pending.append((event, text))
            if len(self.pending) > self.outbox.limit:
                # They are all in the log (pushed after commit): the replay reads them instead.
                lowest = min(held["id"] for held, _ in self.pending)
                self.lost_from = lowest if self.lost_from is None else min(self.lost_from, lowest)
                self.pending.clear()
            return None
        if self.seen is not None:
            if self.seen.expired:
                self.seen = None
            elif self.seen.has(event["id"]):
                return None
        if self.outbox.can_send_now():
            if self.outbox.send_frame_now(frame, event["id"]):
                return None
            return self.outbox.send_now(text, event["id"])
        self._queue(event, text)
        return None

    def _queue(self, event: dict, text: str) -> None:
        if not self.outbox.offer(text, event["id"]):
            asyncio.get_running_loop().create_task(self._overflow(dropped_id=event["id"]))

    def on_status(self, envelope: dict, text: str, frame: Any = None) -> None:
        if not self.ready or self.closing:
            return
        if self.outbox.can_send_now() and self.outbox.send_frame_now(frame):
            return
        self.outbox.offer(text)  # a full outbox skips a status; the next comes in a few seconds

    def credentials(self) -> tuple[str | None, str | None]:
        key = self.principal.api_key
        user = self.principal.user
        return (str(key.pk) if key is not None else None, str(user.pk) if user is not None else None)

    async def revoke(self) -> None:
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(Exception):
            await self._send_text(encode({"type": "error", "error": "Unauthorized", "message": "Credentials revoked."}))
            await self.close(code=CLOSE_UNAUTHORIZED)

    async def _overflow(self, dropped_id: int | None = None) -> None:
        """Too far behind: say where to resume, then close. The server keeps nothing for it."""
        if self.closing:
            return
        self.closing = True
        if self.replay_task is not None:
            self.replay_task.cancel()
        lost = [*self.outbox.pending_ids(), *([dropped_id] if dropped_id is not None else [])]
        delivered = self.outbox.last_id
        candidates = [x for x in (delivered, (min(lost) - 1) if lost else None) if x is not None]
        resume_from = min(candidates) if candidates else None
        flow = self.outbox.flow
        await self.outbox.stop()
        logger.info("ws overflow for tenant %s: resume_from=%s", self.tenant_id, resume_from)
        with contextlib.suppress(Exception):
            notice = {
                "type": "overflow",
                "resume_from": resume_from,
                "message": "You fell too far behind; reconnect with last_event_id=resume_from.",
            }
            await self._send_text(encode(notice))
            if flow is not None:
                # Let a slow (not dead) reader get through what is buffered, the notice included,
                # before the close; a dead one is cut off after twice the grace at most.
                flow.patient_close(OVERFLOW_CLOSE_GRACE_SECONDS)
                flow.attach()
                await flow.wait_writable(OVERFLOW_CLOSE_GRACE_SECONDS)
            await self.close(code=CLOSE_OVERFLOW)

    # --- replay -------------------------------------------------------------------------------

    def _start_replay(self, after_id: int, *, keep_held: bool = False) -> None:
        if not keep_held or self.pending is None:
            self.pending, self.lost_from = [], None
        self.seen = _Seen(after_id)
        self.replay_task = asyncio.get_running_loop().create_task(self._replay(after_id))

    async def _replay(self, after_id: int) -> None:
        seen = self.seen
        try:
            oldest = await in_thread(oldest_event_id)()
            cursor = highest = after_id
            count = 0
            while True:
                # 1. Read the log to its end.
                while True:
                    batch = await in_thread(_read_log)(self.tenant_id, cursor, frozenset(self.subscriptions))
                    for event in batch:
                        cursor = max(cursor, event["id"])
                        if not seen.has(event["id"]):
                            await self.outbox.put(encode(event), event["id"])
                            seen.add(event["id"])
                            highest, count = max(highest, event["id"]), count + 1
                    if len(batch) < REPLAY_BATCH:
                        break
                # 2. Send what arrived live meanwhile and was not in the read.
                while self.pending and self.lost_from is None:
                    held, self.pending = self.pending, []
                    for event, text in sorted(held, key=lambda pair: pair[0]["id"]):
                        if not seen.has(event["id"]) and self._wants(event):
                            await self.outbox.put(text, event["id"])
                            seen.add(event["id"])
                            highest, count = max(highest, event["id"]), count + 1
                if self.lost_from is None:
                    break
                # 3. The hold overflowed: read again from the lowest dropped event (seen ones skip).
                cursor, self.lost_from = min(cursor, self.lost_from - 1), None
            self.pending = None  # live from here: no await since the hold was found empty
            seen.until = time.monotonic() + REPLAY_MEMORY_SECONDS
            truncated = oldest is not None and after_id < oldest - 1
            self._control("replayed", after_id=after_id, count=count, last_event_id=highest, truncated=truncated)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("replay failed for tenant %s", self.tenant_id)
            self.pending = None
            self._error("Replay failed", "Could not read the event log; reconnect with your last_event_id.")


def _read_log(tenant_id: str, after_id: int, subscriptions: frozenset[str]) -> list[dict]:
    return [
        event_envelope(event)
        for event in events_after(tenant=tenant_id, after_id=after_id, session_ids=subscriptions, limit=REPLAY_BATCH)
    ]


def _event_id(value) -> int:
    """A client's event id: a non-negative integer, or its decimal digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        return int(value)
    raise ValueError(value)


def _ref(message) -> Any:
    if isinstance(message, dict):
        ref = message.get("ref")
        if isinstance(ref, (str, int)) and len(str(ref)) <= 100:
            return ref
    return None


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: accepted only to say so with a close code."""

    channel_layer_alias = EventsConsumer.channel_layer_alias

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=encode({"type": "error", "error": "Not found", "message": "The socket is at /ws."}))
        await self.close(code=4404)
