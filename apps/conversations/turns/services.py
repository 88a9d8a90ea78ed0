"""What other apps call to start, resume, cancel and run turns.

- `turn_start`: a queued turn answering a message, ordered behind the session's active turns
  or, as the caller asks (`multitask`), rejecting, interrupting or rolling them back;
- `turn_resume`: an approval was decided (turns/approvals.py holds the lock around both);
- `turn_cancel`: stop the session's current turn;
- `turn_wait` (async) / `turn_wait_sync`: wait for a turn to end or park, on the event push;
- `turn_execute`: the worker's entry point (claim, run, end).
"""

from __future__ import annotations

import logging

from django.db import transaction

from apps.conversations.dispatch import turn_enqueue_on_commit
from apps.conversations.models import ChatSession, Turn
from apps.conversations.turns import state
from apps.conversations.turns.approvals import turn_approval_decide, turn_approvals_expire
from apps.conversations.turns.loop import TurnRunner
from apps.conversations.turns.state import ClaimOutcome, LostOwnership
from apps.conversations.turns.wait import turn_wait, turn_wait_sync
from apps.core.errors import Conflict
from apps.events import types as ev
from apps.events.services import publish

logger = logging.getLogger(__name__)

__all__ = [
    "MULTITASK_STRATEGIES",
    "SessionBusy",
    "turn_approval_decide",
    "turn_approvals_expire",
    "turn_cancel",
    "turn_execute",
    "turn_resume",
    "turn_start",
    "turn_wait",
    "turn_wait_sync",
]

ENQUEUE, REJECT, INTERRUPT, ROLLBACK = "enqueue", "reject", "interrupt", "rollback"
MULTITASK_STRATEGIES = (ENQUEUE, REJECT, INTERRUPT, ROLLBACK)


class SessionBusy(Conflict):
    """multitask=reject while the session has a turn that has not ended."""

    def __init__(self, active_turn_id):
        super().__init__(
            "This session is still answering an earlier message (turn "
            f"{active_turn_id}). Wait for it, cancel it, or post with multitask=enqueue, interrupt or rollback."
        )
        self.active_turn_id = active_turn_id


def _active_turns(session_id) -> list[Turn]:
    return list(
        Turn.objects.filter(session_id=session_id, status__in=Turn.ACTIVE)
        .order_by("created_at", "pk")
        .only("pk", "status", "session_id", "tenant_id")
    )


def turn_start(
    *,
    tenant,
    session: ChatSession,
    input_message,
    api_key=None,
    retry_of: Turn | None = None,
    metadata: dict | None = None,
    multitask: str = ENQUEUE,
) -> Turn:
    """A queued turn answering `input_message`, sent to a worker when the caller's transaction
    commits. Call it inside that transaction (with the message's write).

    The session's turns run one at a time in the order they were started. `multitask` says what
    to do when the session is still answering an earlier message:
    `enqueue` (wait for it), `reject` (SessionBusy, 409; nothing is written), `interrupt`
    (cancel it, keep its partial answer, then run this one) or `rollback` (cancel it and drop
    its partial answer from the history)."""
    if multitask not in MULTITASK_STRATEGIES:
        raise ValueError(f"multitask must be one of {', '.join(MULTITASK_STRATEGIES)}")
    with transaction.atomic(savepoint=False):  # part of the caller's transaction, no savepoint of its own
        if multitask != ENQUEUE:
            # Two posts racing on one session: the second sees the first's turn.
            ChatSession.objects.select_for_update().filter(pk=session.pk).values_list("pk", flat=True).first()
        active = _active_turns(session.pk)
        if active and multitask == REJECT:
            raise SessionBusy(active[0].pk)
        turn = Turn.objects.create(
            tenant=tenant,
            session=session,
            agent=session.agent or getattr(retry_of, "agent", None),
            input_message=input_message,
            retry_of=retry_of,
            api_key=api_key if getattr(api_key, "pk", None) else None,
            metadata=metadata or {},
        )
        if active and multitask in (INTERRUPT, ROLLBACK):
            reason = state.INTERRUPTED if multitask == INTERRUPT else state.ROLLED_BACK
            for earlier in active:
                outcome = state.turn_stop(turn_id=earlier.pk, reason=reason)
                publish(
                    tenant,
                    ev.TURN_INTERRUPTED,
                    {"by_turn_id": str(turn.pk), "multitask": multitask, "outcome": outcome},
                    session=session.pk,
                    turn=earlier.pk,
                )
        elif active:
            publish(
                tenant,
                ev.TURN_QUEUED,
                {"behind_turn_ids": [str(t.pk) for t in active], "position": len(active), "multitask": multitask},
                session=session.pk,
                turn=turn.pk,
            )
        turn_enqueue_on_commit(turn_id=turn.pk)
    return turn


def turn_resume(*, tenant, actor, actor_role: str, approval, approve: bool, reason: str = ""):
    """Decide a parked turn's approval; the turn goes back to a worker (turns/approvals.py)."""
    return turn_approval_decide(
        tenant=tenant, actor=actor, actor_role=actor_role, approval=approval, approve=approve, reason=reason
    )


def turn_cancel(*, tenant, session: ChatSession, reason: str = state.CANCELLED) -> Turn | None:
    """Stop the session's current turn (the oldest that has not ended: the one answering now,
    or waiting for approval). Queued or parked, it ends at once; running, it stops at its next
    token or step and keeps its partial output. Later queued turns then run in order."""
    current = (
        Turn.objects.filter(tenant=tenant, session=session, status__in=Turn.ACTIVE).order_by("created_at", "pk").first()
    )
    if current is None:
        return None
    state.turn_stop(turn_id=current.pk, reason=reason)
    current.refresh_from_db()
    return current


def turn_execute(*, turn_id) -> ClaimOutcome:
    """The worker's entry point: claim the turn, run it, write its end. Safe to call twice."""
    outcome = state.turn_claim(turn_id=turn_id)
    if outcome.turn is None:
        return outcome
    runner = TurnRunner(outcome.turn)
    try:
        runner.run()
    except LostOwnership:
        logger.warning("turn %s: lease lost to another worker; stopping attempt %s", turn_id, outcome.turn.attempt)
    except Exception as exc:
        logger.exception("turn %s failed unexpectedly", turn_id)
        runner.fail(f"Internal error ({type(exc).__name__}); the details are in the worker log.")
    return outcome
