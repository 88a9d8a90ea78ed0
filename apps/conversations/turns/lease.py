"""The heartbeat that keeps a live worker's lease on its turn.

A worker owns a running turn until `lease_expires_at`; a redelivered task or the recovery sweep
takes the turn over once it has passed. The lease used to be renewed only between tokens and
steps, so a tool call longer than the lease (MCP calls may take minutes) handed a live turn to a
second worker. A thread renews it every TURN_HEARTBEAT_SECONDS instead, whatever the turn is
waiting on, so the lease itself can be short (TURN_LEASE_SECONDS) and a dead worker's turn is
taken over within seconds.

The thread also reads the turn's cancel flag in the database (the Redis flag is the fast path;
this one survives a Redis restart) and extends the budget reservation of a call in flight. It
never raises into the turn: it records what it found, and the loop acts on it at its next
checkpoint (`check`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection

from apps.conversations.turns import state

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, *, turn_id, attempt: int, on_beat: Callable[[], None] | None = None):
        self.turn_id = turn_id
        self.attempt = attempt
        self.on_beat = on_beat
        self.interval = float(settings.TURN_HEARTBEAT_SECONDS)
        self.verdict = "owned"  # owned | cancelled | lost
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name=f"turn-heartbeat-{self.turn_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=min(self.interval, 10) + 5)  # it wakes at once on the stop

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.verdict = state.lease_renew(turn_id=self.turn_id, attempt=self.attempt)
                    if self.verdict == "owned" and self.on_beat is not None:
                        self.on_beat()
                except Exception:
                    # A database hiccup: the next beat tries again; the lease has room for misses.
                    logger.exception("turn %s: heartbeat failed", self.turn_id)
                    close_old_connections()
                    continue
                self.beats += 1
                if self.verdict != "owned":
                    return
        finally:
            # This thread's own connection: give it back rather than leave it to the pool's timeout.
            connection.close()
