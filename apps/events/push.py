"""Live push of events to the channel layer without making the publisher wait.

`channel_layer.group_send` is a coroutine; calling it through `async_to_sync` from a worker
costs a thread hop and an event-loop round trip per event (about 2-3 ms), which would be paid
inside the turn loop for every token batch. Instead each process runs one event loop in a
daemon thread; `enqueue()` hands it the message and returns at once, and a single consumer
sends messages strictly in the order they were enqueued.

The queue is bounded: if Redis stalls, new pushes are dropped (and counted) rather than piling
up in memory. Nothing is lost for clients: the event log in PostgreSQL is the record, and a
client that missed a push replays from it by id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

logger = logging.getLogger(__name__)

MAX_PENDING = 10_000


class EventPusher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self.dropped = 0

    def _ensure_started(self) -> None:
        # Celery's prefork children inherit this object from their parent; a thread does not
        # survive fork, so each process starts its own on first use.
        if self._pid == os.getpid() and self._loop is not None:
            return
        with self._lock:
            if self._pid == os.getpid() and self._loop is not None:
                return
            ready = threading.Event()
            thread = threading.Thread(target=self._run, args=(ready,), name="event-push", daemon=True)
            thread.start()
            ready.wait(5)
            self._pid = os.getpid()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._queue = asyncio.Queue(maxsize=MAX_PENDING)
        self._consumer = loop.create_task(self._consume())  # keep a reference: tasks are weakly held
        ready.set()
        loop.run_forever()

    async def _consume(self) -> None:
        from channels.layers import get_channel_layer

        while True:
            group, payload = await self._queue.get()
            try:
                layer = get_channel_layer()
                if layer is not None:
                    await layer.group_send(group, payload)
            except Exception as exc:  # noqa: BLE001 - best effort; clients replay from the log
                logger.warning("event push to %s failed: %s", group, exc)
            finally:
                self._queue.task_done()

    def _put(self, item: tuple[str, dict[str, Any]]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    def enqueue(self, group: str, payload: dict[str, Any]) -> None:
        self._ensure_started()
        self._loop.call_soon_threadsafe(self._put, (group, payload))

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything enqueued so far is sent (tests, and a clean worker shutdown)."""
        if self._loop is None or self._pid != os.getpid():
            return True
        future = asyncio.run_coroutine_threadsafe(self._queue.join(), self._loop)
        try:
            future.result(timeout)
        except TimeoutError:
            return False
        return True


pusher = EventPusher()
