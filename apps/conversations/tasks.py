"""Thin Celery tasks: take ids, call a turn service, safe to deliver twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.conversations.turns import services as turns


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # bounded by the turn's own crash counter (TURN_MAX_ATTEMPTS)
    ignore_result=True,
)
def execute_turn(self, turn_id: str) -> None:
    outcome = turns.turn_execute(turn_id=turn_id)
    if outcome.retry_in is not None:
        # Another worker holds the turn's lease; look again once it has had time to expire.
        raise self.retry(countdown=outcome.retry_in)


@shared_task(ignore_result=True)
def recover_stale_turns() -> int:
    """Requeue turns whose worker vanished (lease expired) or whose task was lost (queued too long).

    execute_turn is idempotent, so sending a turn that is in fact fine costs one cheap claim.
    """
    from django.core.cache import cache

    from apps.conversations.services import turn_ids_needing_recovery

    sent = 0
    for turn_id in turn_ids_needing_recovery():
        # Once per turn per window: a long queue must not be re-sent every run and grow. The
        # window is a few leases, so a send that was lost is repeated soon after.
        if cache.add(f"turn-recovery:{turn_id}", 1, timeout=max(3 * settings.TURN_LEASE_SECONDS, 10)):
            execute_turn.delay(str(turn_id))
            sent += 1
    return sent


@shared_task(ignore_result=True)
def dispatch_pending_turns() -> int:
    """The outbox sweep: send queued turns that were committed while the broker was down."""
    from apps.conversations.dispatch import turns_dispatch_pending

    return turns_dispatch_pending()


@shared_task(ignore_result=True)
def expire_approvals() -> int:
    """Pending approvals past their time count as denied, and their turns go on."""
    return turns.turn_approvals_expire()
