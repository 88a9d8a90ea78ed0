"""Deciding a parked turn's approval and resuming the turn: one transaction, one winner.

Policy decides (apps/policy/services.py) and never touches a turn; this module holds the turn's
row lock around the decision and the resume, and `state.turn_stop` takes the same lock to
cancel. So when an approve and a cancel race, whichever locks the turn first wins outright: an
approve that comes second finds the approval closed with the turn (409), and a cancel that comes
second finds the turn queued to resume and cancels it before the call runs.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.conversations.models import Turn
from apps.conversations.turns import state
from apps.policy import services as policy
from apps.policy.models import Approval


def _lock_turn(turn_id) -> Turn | None:
    return Turn.objects.select_for_update(of=("self",)).filter(pk=turn_id).first()


def turn_approval_decide(
    *, tenant, actor, actor_role: str, approval: Approval, approve: bool, reason: str = ""
) -> Approval:
    """Approve or deny a waiting tool call; the turn resumes on a worker, which runs exactly
    the approved call once (or tells the model it was not run)."""
    with transaction.atomic():
        _lock_turn(approval.turn_id)
        decided = policy.approval_decide(
            tenant=tenant, actor=actor, actor_role=actor_role, approval=approval, approve=approve, reason=reason
        )
        state.turn_requeue_after_decision(turn_id=approval.turn_id)
    return decided


def turn_approvals_expire(*, now=None) -> int:
    """Pending approvals past their time count as denied; their turns go on."""
    now = now or timezone.now()
    expired = 0
    for approval in policy.approvals_due_for_expiry(now=now):
        with transaction.atomic():
            _lock_turn(approval.turn_id)
            if policy.approval_expire(approval=approval, now=now):
                state.turn_requeue_after_decision(turn_id=approval.turn_id)
                expired += 1
    return expired
