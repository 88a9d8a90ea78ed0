"""What one web process shares between its live connections (one `Hub` per event loop).

Fan-out: the hub has the process's only channel-layer channel. It joins the group of every
tenant that has a socket or SSE stream here, receives each pushed event once, encodes it to
JSON once, and hands it to each local listener of that tenant: a socket puts it in its outbox,
an SSE stream wakes up and reads the log. Without the hub, each socket would have its own
channel: one Redis delivery, one msgpack decode, one dispatch task and one JSON encode per
event per socket, which is where the time went with hundreds of sockets.

Also here: the group barrier (proof that this process receives a group's pushes before a
socket is told `connected` or a replay reads the log, so nothing falls between the two), and
one ticker for system_status and for cutting off connections whose key was revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from channels.db import DatabaseSyncToAsync
from channels.layers import get_channel_layer
from django.conf import settings

from apps.events import types as ev
from apps.events.services import ephemeral_envelope, tenant_group
from apps.events.transport import prepare_frame

logger = logging.getLogger(__name__)

BARRIER_TIMEOUT_SECONDS = 2.0
FAN_OUT_SLICE = 16  # sockets handed an event before the loop gets a turn to write them


def in_thread(fn: Callable) -> Callable:
    """Run ORM code in the default thread pool, with Django's connection hygiene around it.

    Not Channels' thread-sensitive default, which would put every socket's queries on one
    shared thread one after another. Connections go back to the pool after each call.
    """
    return DatabaseSyncToAsync(fn, thread_sensitive=False)


def encode(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope, separators=(",", ":"))


class Listener(Protocol):
    """A socket, an SSE stream or a turn waiter, as the hub sees it.

    A listener with `ticks = False` (a turn waiter: it lives for one wait and only wants to be
    woken) gets no system_status and no credential re-checks, and does not start the ticker,
    whose status snapshot and re-checks are database queries.
    """

    tenant_id: str

    def deliver(self, event: dict[str, Any], text: str, frame: Any = None) -> Awaitable[None] | None: ...  # no blocking

    def on_status(self, envelope: dict[str, Any], text: str, frame: Any = None) -> None: ...

    def credentials(self) -> tuple[str | None, str | None]: ...  # (api key id, user id)

    async def revoke(self) -> None: ...


@dataclass
class _Group:
    confirmed: bool = False
    token: str | None = None
    pending: asyncio.Future | None = None


class Hub:
    def __init__(self) -> None:
        self.listeners: dict[str, set[Listener]] = defaultdict(set)
        self._groups: dict[str, _Group] = {}  # tenant id -> the hub's membership of its group
        self._channel: str | None = None
        self._receiver: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._leaving: set[asyncio.Task] = set()

    # --- membership -------------------------------------------------------------------------------

    async def add(self, listener: Listener) -> None:
        """Register `listener`; returns once this process is known to receive its tenant's pushes."""
        self.listeners[listener.tenant_id].add(listener)
        if _ticks(listener) and (self._ticker is None or self._ticker.done()):
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        state = await self._join(listener.tenant_id)
        await self._confirm(listener.tenant_id, state)

    def remove(self, listener: Listener) -> None:
        """Synchronous, so a connection's cleanup cannot be cut short by its own cancellation;
        the group is left by a task once the tenant has nobody left here."""
        listeners = self.listeners.get(listener.tenant_id)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self.listeners[listener.tenant_id]
            task = asyncio.get_running_loop().create_task(self._leave_if_unused(listener.tenant_id))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)

    async def _join(self, tenant_id: str) -> _Group:
        async with self._lock:
            layer = get_channel_layer()
            if self._channel is None:
                self._channel = await layer.new_channel()
                self._receiver = asyncio.get_running_loop().create_task(self._receive(layer, self._channel))
            state = self._groups.get(tenant_id)
            if state is None:
                state = self._groups[tenant_id] = _Group()
                await layer.group_add(tenant_group(tenant_id), self._channel)
            return state

    async def _leave_if_unused(self, tenant_id: str) -> None:
        async with self._lock:
            if self.listeners.get(tenant_id) or tenant_id not in self._groups:
                return  # somebody came back meanwhile
            del self._groups[tenant_id]
            with contextlib.suppress(Exception):
                await get_channel_layer().group_discard(tenant_group(tenant_id), self._channel)

    async def _confirm(self, tenant_id: str, state: _Group) -> None:
        """With the pub/sub layer, `group_add` sends SUBSCRIBE without waiting for Redis to
        confirm it; an event published in that instant would be neither live (not subscribed
        yet) nor, if it committed after a replay's read, in the replay. Seeing our own message
        come back through the group proves the subscription. Once per tenant per process while
        it has listeners here; concurrent callers share the round trip."""
        if state.confirmed:
            return
        if state.pending is None or state.pending.done():
            state.token = uuid.uuid4().hex
            state.pending = asyncio.get_running_loop().create_future()
            message = {"type": "ws.barrier", "tenant": tenant_id, "token": state.token}
            await get_channel_layer().group_send(tenant_group(tenant_id), message)
        try:
            await asyncio.wait_for(asyncio.shield(state.pending), BARRIER_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning("no barrier echo for tenant %s within %ss", tenant_id, BARRIER_TIMEOUT_SECONDS)
            state.pending = None

    # --- fan-out ----------------------------------------------------------------------------------

    async def _receive(self, layer, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis hiccup: sockets resume from the log, SSE polls it
                logger.exception("live hub: channel layer receive failed")
                await asyncio.sleep(1)
                continue
            kind = message.get("type")
            if kind == "event.push":
                await self._fan_out(message.get("event") or {})
            elif kind == "tenant.revoke":  # the tenant was suspended (ws_auth.sockets_close_for_tenant)
                await self._revoke_tenant(message.get("tenant"))
            elif kind == "ws.barrier":
                state = self._groups.get(message.get("tenant"))
                if state is not None and state.token == message.get("token"):
                    state.confirmed = True
                    if state.pending is not None and not state.pending.done():
                        state.pending.set_result(True)

    async def _fan_out(self, event: dict[str, Any]) -> None:
        listeners = self.listeners.get(event.get("tenant"))
        if not listeners:
            return
        text = encode(event)  # once per process, not once per socket
        frame = prepare_frame(text)  # and the WebSocket frame too
        for n, listener in enumerate(list(listeners), 1):
            try:
                sending = listener.deliver(event, text, frame)
                if sending is not None:
                    await sending  # under daphne a send never waits: it only fills a buffer
            except Exception:  # one broken connection must not starve the others
                logger.exception("live hub: delivery failed")
            if n % FAN_OUT_SLICE == 0:
                # Let the loop send what is queued so far: Twisted writes a socket only on the
                # loop's next turn, so without this the first socket would wait for the last.
                await asyncio.sleep(0)

    # --- system_status and credential checks ------------------------------------------------------

    async def _tick(self) -> None:
        status_every = settings.SYSTEM_STATUS_SECONDS
        recheck_every = settings.WS_AUTH_RECHECK_SECONDS
        loop = asyncio.get_running_loop()
        next_status = loop.time() + status_every
        next_recheck = loop.time() + recheck_every
        while self._ticking():
            await asyncio.sleep(max(0.0, min(next_status, next_recheck) - loop.time()))
            now = loop.time()
            try:
                if now >= next_status:
                    next_status = now + status_every
                    await self._send_status()
                if now >= next_recheck:
                    next_recheck = now + recheck_every
                    await self._recheck_credentials()
            except Exception:  # the ticker must survive a database or Redis outage
                logger.exception("live ticker")

    def _ticking(self) -> dict[str, list[Listener]]:
        """The listeners the ticker serves, by tenant (turn waiters left out)."""
        ticking = {}
        for tenant_id, group in self.listeners.items():
            members = [listener for listener in group if _ticks(listener)]
            if members:
                ticking[tenant_id] = members
        return ticking

    async def _send_status(self) -> None:
        from apps.events.status import snapshot

        ticking = self._ticking()
        if not ticking:
            return
        figures = await in_thread(snapshot)(list(ticking))
        sent = 0
        for tenant_id, data in figures.items():
            envelope = ephemeral_envelope(tenant_id=tenant_id, type=ev.SYSTEM_STATUS, data=data)
            text = encode(envelope)
            frame = prepare_frame(text)
            for listener in self._ticking().get(tenant_id, ()):
                listener.on_status(envelope, text, frame)
                sent += 1
                if sent % FAN_OUT_SLICE == 0:
                    # Hundreds of sockets at once would hold the loop for tens of milliseconds;
                    # events arriving meanwhile go out between the slices.
                    await asyncio.sleep(0)

    async def _revoke_tenant(self, tenant_id: str | None) -> None:
        for listener in list(self.listeners.get(tenant_id, ())):
            self.remove(listener)
            await listener.revoke()

    async def _recheck_credentials(self) -> None:
        from apps.events.ws_auth import still_valid

        everyone = [listener for group in self._ticking().values() for listener in group]
        if not everyone:
            return
        entries = [(str(id(listener)), listener.tenant_id, *listener.credentials()) for listener in everyone]
        keep = await in_thread(still_valid)(entries)
        for listener in everyone:
            if str(id(listener)) not in keep:
                self.remove(listener)
                await listener.revoke()


def _ticks(listener: Listener) -> bool:
    return getattr(listener, "ticks", True)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This process's hub (one per event loop: daphne has one; tests make one per loop)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub()
    return found
