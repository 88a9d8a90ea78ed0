"""The only code that changes `Turn.status`.

```
            post ─► queued ──claim──► running ──answer──► completed
                      ▲  │              │  │ ╲──error───► failed
          decided ────┘  │ cancel       │  │  ╲─cancel──► cancelled
  (approve/deny/expire)  ▼              │  ▼
     waiting_approval ◄──park───────────┘  running (takeover: the lease expired)
            │ cancel
            ▼
        cancelled
```

Every transition is a compare-and-set on the row (`status`, and `attempt` for a running turn:
the fencing token of the worker that claimed it), with its event written in the same
transaction, so no client ever sees a state without its event or the reverse. A transition that
finds the row moved on does nothing and says so (LostOwnership for a worker, a return value or
Conflict for a caller).

Ordering: turns of one session run one at a time, in the order they were posted. A queued turn
with an earlier active turn in its session is not claimed (`blocked`); whichever transition ends
a turn sends the session's next queued turn on commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from apps.conversations import cancellation
from apps.conversations.dispatch import turn_enqueue_on_commit, turn_send
from apps.conversations.models import Message, ToolCall, Turn
from apps.conversations.turns.parking import TurnProgress
from apps.core.db import non_durable_commit
from apps.events import types as ev
from apps.events.services import publish
from apps.policy.services import approvals_close_for_turn

logger = logging.getLogger(__name__)

# Why a turn was stopped (Turn.cancel_reason, and the turn_cancelled event's reason).
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"
ROLLED_BACK = "rolled back"
SUSPENDED = "tenant suspended"


class LostOwnership(Exception):
    """The turn is no longer this worker's at its attempt (another took it over, or it ended)."""


@dataclass(frozen=True)
class ClaimOutcome:
    state: str  # ran | skipped | busy | blocked | missing
    turn: Turn | None = None
    retry_in: float | None = None
    resumed: bool = False  # claimed after an approval was decided
    takeover: bool = False  # claimed from a worker that died


def lease_seconds() -> float:
    return float(settings.TURN_LEASE_SECONDS)


def _emit(turn: Turn, type_: str, data: dict[str, Any]) -> None:
    publish(turn.tenant_id, type_, data, session=turn.session_id, turn=turn.pk)


def _earlier_active():
    """For the claim's row: another turn of the session is running or parked, or an earlier one
    is still queued. Then this one waits its turn. Read in the claim's own statement, so ordering
    costs no round trip. "Running or parked" covers any order: a turn committed a moment after a
    later one was claimed still waits for it, so two never run at once."""
    same_session = Turn.objects.filter(session_id=OuterRef("session_id")).exclude(pk=OuterRef("pk"))
    # Ordered by the messages they answer: two posts racing may write their turns in either order.
    asked = OuterRef("input_message__created_at")
    earlier = Q(input_message__created_at__lt=asked) | Q(input_message__created_at=asked, pk__lt=OuterRef("pk"))
    busy = Q(status__in=[Turn.Status.RUNNING, Turn.Status.WAITING_APPROVAL]) | (Q(status=Turn.Status.QUEUED) & earlier)
    return Exists(same_session.filter(busy))


# --- queued → running ------------------------------------------------------------------------


def turn_claim(*, turn_id) -> ClaimOutcome:
    """A worker's claim: queued (or running with an expired lease) → running at attempt + 1."""
    now = timezone.now()
    # Not durable at commit (no wait for the disk, ~4 ms here): a claim lost in a database crash
    # leaves the turn queued, its worker's later writes fail their compare-and-set, and recovery
    # sends it again. Everything the claim decides is re-decided then.
    with non_durable_commit():
        turn = (
            Turn.objects.select_for_update(of=("self",))
            .select_related("tenant", "session", "agent", "input_message")
            .annotate(behind_earlier=_earlier_active())
            .filter(pk=turn_id)
            .first()
        )
        if turn is None:
            return ClaimOutcome("missing")
        if turn.is_final or turn.status == Turn.Status.WAITING_APPROVAL:
            return ClaimOutcome("skipped")
        if turn.status == Turn.Status.RUNNING and turn.lease_expires_at and turn.lease_expires_at > now:
            return ClaimOutcome("busy", retry_in=(turn.lease_expires_at - now).total_seconds() + 1)
        suspended = not turn.tenant.is_active  # a suspended tenant's turn never starts
        if turn.cancel_requested or suspended:
            reason = SUSPENDED if suspended else (turn.cancel_reason or CANCELLED)
            _end(turn, Turn.Status.CANCELLED, reason=reason, error=reason if suspended else "cancelled before it ran")
            return ClaimOutcome("skipped")
        takeover = turn.status == Turn.Status.RUNNING
        if takeover and turn.crash_count + 1 >= settings.TURN_MAX_ATTEMPTS:
            error = f"Gave up after {turn.crash_count + 1} attempts: the worker stopped mid-turn each time."
            _end(turn, Turn.Status.FAILED, error=error, failure="internal")
            return ClaimOutcome("skipped")
        if not takeover and turn.behind_earlier:
            return ClaimOutcome("blocked")  # the earlier turn's end sends this one
        resumed = not takeover and bool(turn.progress.get("waiting_tool_call_id"))
        turn.attempt += 1
        turn.crash_count += int(takeover)
        turn.status = Turn.Status.RUNNING
        turn.lease_expires_at = now + dt.timedelta(seconds=lease_seconds())
        turn.started_at = turn.started_at or now
        turn.save(update_fields=["attempt", "crash_count", "status", "lease_expires_at", "started_at", "updated_at"])
        data: dict[str, Any] = {"attempt": turn.attempt, "agent": getattr(turn.agent, "name", None)}
        if takeover:
            # Clients drop the text of the step that was streaming: it is streamed again.
            data["takeover"] = True
        if resumed:
            data["resumed"] = True
        _emit(turn, ev.TURN_STARTED, data)
    return ClaimOutcome("ran", turn=turn, resumed=resumed, takeover=takeover)


# --- running: the lease and the progress -------------------------------------------------------


def lease_renew(*, turn_id, attempt: int) -> str:
    """Extend a running turn's lease: `owned`, `cancelled` (a stop was asked for: the database's
    record, read here in case the fast flag in Redis was lost) or `lost`."""
    owned = Turn.objects.filter(pk=turn_id, status=Turn.Status.RUNNING, attempt=attempt)
    if owned.filter(cancel_requested=False).update(
        lease_expires_at=timezone.now() + dt.timedelta(seconds=lease_seconds())
    ):
        return "owned"
    return "cancelled" if owned.filter(cancel_requested=True).exists() else "lost"


def progress_save(*, turn: Turn, progress: TurnProgress) -> None:
    """The loop's checkpoint at a tool step, before its calls run."""
    updated = Turn.objects.filter(pk=turn.pk, status=Turn.Status.RUNNING, attempt=turn.attempt).update(
        progress=progress.as_json(), updated_at=timezone.now()
    )
    if not updated:
        raise LostOwnership


# --- running → completed | failed | cancelled | waiting_approval ----------------------------------


def turn_finish(
    *,
    turn: Turn,
    status: str,
    fields: dict[str, Any],
    answer: str | None,
    message_meta: dict[str, Any],
    event: str,
    event_data: Callable[[dict[str, Any]], dict[str, Any]],
    before_event: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """End (or park) a running turn at this worker's attempt: the answer message, the row and
    its event in one transaction (one commit). `event_data(fields)` builds the event from what
    was written; `before_event` runs inside the transaction first (parking's approval request).
    Raises LostOwnership when the turn is not ours any more."""
    fields = {**fields, "status": status}
    with transaction.atomic():
        if answer is not None:
            fields["output_message"] = Message.objects.create(
                tenant_id=turn.tenant_id,
                session_id=turn.session_id,
                role=Message.Role.ASSISTANT,
                parts=[{"type": "text", "text": answer}],
                metadata=message_meta,
            )
        owned = Turn.objects.filter(pk=turn.pk, status=Turn.Status.RUNNING, attempt=turn.attempt)
        if not owned.update(**fields):
            raise LostOwnership
        fields["message_id"] = str(fields["output_message"].pk) if "output_message" in fields else None
        if before_event is not None:
            before_event()
        _emit(turn, event, event_data(fields))
        if status in Turn.FINAL:
            _send_next_on_commit(turn.session_id)
    if status in Turn.FINAL:
        cancellation.clear(turn.pk)
    return fields


def _end(turn: Turn, status: str, *, reason: str = "", error: str = "", failure: str | None = None) -> None:
    """End a turn that is not running (queued, parked, or a dead worker's): inside the caller's
    transaction, with the row already locked or compare-and-set by the caller."""
    now = timezone.now()
    metadata = {**turn.metadata, "failure": failure} if failure else turn.metadata
    Turn.objects.filter(pk=turn.pk).update(
        status=status,
        finished_at=now,
        error=error,
        cancel_reason=reason if status == Turn.Status.CANCELLED else turn.cancel_reason,
        lease_expires_at=None,
        metadata=metadata,
        updated_at=now,
    )
    turn.status, turn.finished_at, turn.error = status, now, error
    if status == Turn.Status.CANCELLED:
        _emit(turn, ev.TURN_CANCELLED, {"partial_text": "", "reason": reason})
    else:
        _emit(turn, ev.TURN_FAILED, {"error": error})
    _send_next_on_commit(turn.session_id)


def _send_next_on_commit(session_id) -> None:
    """The session's next queued turn goes to a worker once this one's end is committed."""

    def send() -> None:
        following = (
            Turn.objects.filter(session_id=session_id, status=Turn.Status.QUEUED)
            .order_by("input_message__created_at", "pk")
            .values_list("pk", flat=True)
            .first()
        )
        if following is not None:
            turn_send(turn_id=following)

    transaction.on_commit(send)


# --- waiting_approval → queued (resume) -------------------------------------------------------------


def turn_requeue_after_decision(*, turn_id) -> bool:
    """An approval of the parked turn was decided: back to the queue, a resume (not a crash
    attempt). The caller holds the turn's row lock (turns/approvals.py). Back in the outbox
    (dispatched_at cleared): if the broker is down now, the dispatcher sends it later."""
    now = timezone.now()
    moved = Turn.objects.filter(pk=turn_id, status=Turn.Status.WAITING_APPROVAL).update(
        status=Turn.Status.QUEUED, dispatched_at=None, resume_count=F("resume_count") + 1, updated_at=now
    )
    if moved:
        turn_enqueue_on_commit(turn_id=turn_id)
    return bool(moved)


# --- stop: cancel, interrupt, roll back, suspend ----------------------------------------------------


def turn_stop(*, turn_id, reason: str = CANCELLED, keep_partial: bool = True) -> str:
    """Ask a turn to stop. Returns what happened: `ended` (it was queued or parked and is
    cancelled now), `stopping` (it is running: its worker stops at the next token or step and
    writes the end itself), or `finished` (it had ended already).

    Runs under the turn's row lock, so a decision on its approval and a cancel are serialised:
    whichever locks first wins, and the other sees the outcome (turns/approvals.py)."""
    with transaction.atomic():
        turn = Turn.objects.select_for_update(of=("self",)).filter(pk=turn_id).first()
        if turn is None or turn.is_final:
            return "finished"
        if turn.status in (Turn.Status.QUEUED, Turn.Status.WAITING_APPROVAL):
            partial = ""
            if keep_partial and reason != ROLLED_BACK:
                partial = "".join(TurnProgress.load(turn.progress).answer_so_far)
            _approvals_close(turn, reason)
            _end_unstarted(turn, reason=reason, partial=partial)
            return "ended"
        Turn.objects.filter(pk=turn.pk).update(cancel_requested=True, cancel_reason=reason)
        transaction.on_commit(lambda: cancellation.request(turn.pk, reason=reason))
        return "stopping"


def _end_unstarted(turn: Turn, *, reason: str, partial: str) -> None:
    now = timezone.now()
    output = None
    if partial:  # a parked turn's text so far, kept as its answer unless rolled back
        output = Message.objects.create(
            tenant_id=turn.tenant_id,
            session_id=turn.session_id,
            role=Message.Role.ASSISTANT,
            parts=[{"type": "text", "text": partial}],
            metadata={"stop_reason": "cancelled", "partial": True},
        )
    error = SUSPENDED if reason == SUSPENDED else "cancelled before it ran"
    # Its calls that were waiting for a decision (or not reached) will never run.
    ToolCall.objects.filter(
        turn_id=turn.pk, status__in=[ToolCall.Status.WAITING_APPROVAL, ToolCall.Status.PENDING]
    ).update(status=ToolCall.Status.FAILED, error=f"Not run: the turn was {reason}.", finished_at=now, updated_at=now)
    Turn.objects.filter(pk=turn.pk).update(
        status=Turn.Status.CANCELLED,
        cancel_requested=True,
        cancel_reason=reason,
        finished_at=now,
        error=error,
        output_message=output,
        updated_at=now,
    )
    _emit(turn, ev.TURN_CANCELLED, {"partial_text": partial, "reason": reason})
    _send_next_on_commit(turn.session_id)


def _approvals_close(turn: Turn, reason: str) -> None:
    """A stopped turn's waiting tool call will never run: its approval closes with it."""
    approvals_close_for_turn(turn_id=turn.pk, reason=f"the turn was {reason}", label=f"system:{reason}")
