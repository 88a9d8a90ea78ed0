"""Beat's scheduler (CELERY_BEAT_SCHEDULER): django-celery-beat's DatabaseScheduler, tuned for
many jobs due in the same second.

The library's scheduler sends one due entry per tick and, on every tick, asks the database
whether the schedule changed (`PeriodicTasks.last_update`, ~5 ms on the shared machine) and
compares every entry with a copy of the schedule: 100 jobs due at one minute boundary took
beat's one thread over a second to send. This one

- asks the database at most every CRON_BEAT_CHANGE_CHECK_MS (a changed job is noticed that
  much later at worst; beat's own wake-up, CELERY_BEAT_MAX_LOOP_INTERVAL, bounds it anyway),
- sends every due entry in one tick (up to CRON_BEAT_MAX_SENDS_PER_TICK, so a pathological
  backlog still lets beat sync and notice changes between batches),
- skips the entry-by-entry comparison while the heap was built from the very schedule dict the
  library hands back (it replaces that dict wholesale when it reloads, and then invalidates
  the heap itself).

What is sent, and when each entry is due, is the library's: the slot a fire stands for is
decided by the worker (apps/scheduling/runs.py), so none of this touches the unique run key,
two beats collapsing onto one run, or DST handling."""

from __future__ import annotations

import time

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler


class JobScheduler(DatabaseScheduler):
    _changes_checked_at: float | None = None
    _heap_schedule = None

    def schedule_changed(self) -> bool:
        every = float(settings.CRON_BEAT_CHANGE_CHECK_MS) / 1000.0
        now = time.monotonic()
        if self._changes_checked_at is not None and now - self._changes_checked_at < every:
            return False
        self._changes_checked_at = now
        return super().schedule_changed()

    def populate_heap(self, *args, **kwargs) -> None:
        super().populate_heap(*args, **kwargs)
        self._heap_schedule = self._schedule

    def schedules_equal(self, old_schedules, new_schedules) -> bool:
        # The library replaces `_schedule` with a new dict on every reload and flags the heap
        # invalid; while neither happened, the heap is the schedule's and the O(n) compare (with
        # a copy of the dict, per tick) says nothing new.
        if not self._heap_invalidated and new_schedules is not None and new_schedules is self._heap_schedule:
            return True
        return super().schedules_equal(old_schedules, new_schedules)

    def tick(self, *args, **kwargs) -> float:
        """Send every due entry, then say how long to sleep (the library sends one per call)."""
        limit = max(1, int(settings.CRON_BEAT_MAX_SENDS_PER_TICK))
        for _ in range(limit):
            delay = super().tick(*args, **kwargs)
            if delay:
                return delay
        return 0
