"""Budgets that cannot be bypassed: every model call reserves its estimated cost first.

Before a model call the turn engine calls `budget_reserve()`. Under a per-tenant Postgres
advisory lock it adds up, for every budget scope that applies, what is settled (the `cost_usd`
of this month's turns) and what is reserved by calls in flight (`Turn.reserved_usd` while
`reserved_until` is in the future), and refuses the call when the estimate does not fit. Then
it records the reservation on the turn's row. After the call `budget_settle()` moves the real
cost into `Turn.cost_usd` and clears the reservation; a failed call's `budget_release()` only
clears it. So 20 concurrent turns see each other's reservations, and the overspend is bounded
by how far real costs exceed their estimates.

Crash safety: a reservation is a row value with an expiry, not a lock. A worker that dies
holding one stops extending it, and after BUDGET_RESERVATION_SECONDS it no longer counts; the
settled spend was already written call by call, so what the Turn rows say is what was spent.

Scopes are a list of `BudgetScope(key, limit_usd, spent_usd_fn, label)`: the tenant's monthly
budget, the API key's monthly budget, the agent's per-turn limit, and (once platform
providers exist) the per-tenant cap of a platform provider. Adding one is a few lines here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from apps.conversations.models import Turn

SCOPE_TENANT = "tenant_monthly"
SCOPE_API_KEY = "api_key_monthly"
SCOPE_AGENT_TURN = "agent_turn"
SCOPE_PLATFORM = "platform_provider_monthly"
BUDGET_SCOPES = (SCOPE_TENANT, SCOPE_API_KEY, SCOPE_AGENT_TURN, SCOPE_PLATFORM)

ZERO = Decimal("0")


class BudgetExhausted(Exception):
    """A budget is spent (or the next call does not fit in it); `scope` says which one."""

    def __init__(self, message: str, *, scope: str, limit_usd: Decimal, spent_usd: Decimal):
        super().__init__(message)
        self.scope = scope
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd


@dataclass(frozen=True)
class BudgetScope:
    key: str  # one of the SCOPE_* names; the 402 body's "budget"
    limit_usd: Decimal
    spent_usd_fn: Callable[[dt.datetime], Decimal]  # settled + live reservations at `now`
    label: str  # "this tenant's monthly budget of $5.00"
    how_to_raise: str

    def refusal(self, spent: Decimal, needed: Decimal | None) -> BudgetExhausted:
        call = f", and the next model call needs about ${needed:.6f}" if needed else ""
        message = f"Budget exhausted: {self.label} is spent (${spent:.6f} spent or reserved{call}). {self.how_to_raise}"
        return BudgetExhausted(message, scope=self.key, limit_usd=self.limit_usd, spent_usd=spent)


@dataclass(frozen=True)
class Reservation:
    turn_id: str
    attempt: int
    amount_usd: Decimal


# --- spend -------------------------------------------------------------------------------------


def month_start(now: dt.datetime | None = None) -> dt.datetime:
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _spent(turns, now: dt.datetime, *, exclude_turn_id=None) -> Decimal:
    """Settled cost of this month's turns plus live reservations, in one aggregate. The calling
    turn's own reservation is left out: it is about to be replaced."""
    since = month_start(now)
    live = Q(reserved_until__gt=now)
    if exclude_turn_id is not None:
        live &= ~Q(pk=exclude_turn_id)
    totals = turns.filter(Q(created_at__gte=since) | live).aggregate(
        settled=Sum("cost_usd", filter=Q(created_at__gte=since)), reserved=Sum("reserved_usd", filter=live)
    )
    return (totals["settled"] or ZERO) + (totals["reserved"] or ZERO)


def tenant_month_spend(*, tenant) -> Decimal:
    """This calendar month's settled spend (what the Turn rows say; no reservations)."""
    total = Turn.objects.filter(tenant=tenant, created_at__gte=month_start()).aggregate(total=Sum("cost_usd"))
    return total["total"] or ZERO


# --- scopes ------------------------------------------------------------------------------------


def _decimal(value) -> Decimal | None:
    if value in (None, ""):
        return None
    return Decimal(str(value))


def tenant_scope(tenant, *, exclude_turn_id=None) -> BudgetScope | None:
    limit = _decimal((tenant.settings or {}).get("monthly_budget_usd"))
    if limit is None:
        return None
    return BudgetScope(
        key=SCOPE_TENANT,
        limit_usd=limit,
        spent_usd_fn=lambda now: _spent(Turn.objects.filter(tenant=tenant), now, exclude_turn_id=exclude_turn_id),
        label=f"this tenant's monthly budget of ${limit:.2f}",
        how_to_raise="An owner can raise monthly_budget_usd with PATCH /api/tenants/current.",
    )


def api_key_scope(api_key, *, exclude_turn_id=None) -> BudgetScope | None:
    limit = _decimal(getattr(api_key, "monthly_budget_usd", None)) if api_key is not None else None
    if limit is None:
        return None
    return BudgetScope(
        key=SCOPE_API_KEY,
        limit_usd=limit,
        spent_usd_fn=lambda now: _spent(
            Turn.objects.filter(tenant_id=api_key.tenant_id, api_key=api_key), now, exclude_turn_id=exclude_turn_id
        ),
        label=f"the monthly budget of API key '{api_key.name}' ({api_key.prefix}…) of ${limit:.2f}",
        how_to_raise=f'An admin can raise it with PATCH /api/keys/{api_key.pk} {{"monthly_budget_usd": ...}}.',
    )


def agent_turn_scope(agent, turn) -> BudgetScope | None:
    limit = _decimal((agent.model_policy or {}).get("max_cost_usd"))
    if limit is None:
        return None
    return BudgetScope(
        key=SCOPE_AGENT_TURN,
        limit_usd=limit,
        # Only settled calls: the turn holds one reservation at a time, the one being replaced.
        spent_usd_fn=lambda _now: Turn.objects.filter(pk=turn.pk).values_list("cost_usd", flat=True).first() or ZERO,
        label=f"agent '{agent.name}''s limit of ${limit} per turn (model_policy.max_cost_usd)",
        how_to_raise="Raise max_cost_usd, pick a cheaper model, lower max_output_tokens or shorten the conversation.",
    )


def platform_scope_for(candidate, tenant) -> BudgetScope | None:  # noqa: ARG001 (wired after merge)
    """The per-tenant cap of the platform provider `candidate` runs on.

    Not wired yet: platform providers and their selectors (`platform_spend_this_month`,
    `platform_cap_for` in apps/agents/selectors.py) come from another branch. Once merged:
    return None unless the candidate's provider is a platform provider with a cap, else a
    BudgetScope(SCOPE_PLATFORM, cap, lambda now: platform_spend_this_month(tenant, provider)
    + the live reservations on it, i.e. Turn rows with reserved_provider=provider, ...)."""
    return None


def budget_scopes(*, tenant, turn, agent, candidate) -> list[BudgetScope]:
    """Every budget one model call of `turn` on `candidate` is charged against."""
    scopes = [
        tenant_scope(tenant, exclude_turn_id=turn.pk),
        api_key_scope(turn.api_key, exclude_turn_id=turn.pk) if turn.api_key_id else None,
        agent_turn_scope(agent, turn) if agent is not None else None,
        platform_scope_for(candidate, tenant),
    ]
    return [scope for scope in scopes if scope is not None]


# --- reserve, settle, release ------------------------------------------------------------------


def _lock_tenant(tenant) -> None:
    """Serialize the check-and-reserve of one tenant's calls (every scope belongs to one tenant).
    An advisory transaction lock: no row to block, released at commit."""
    key = int.from_bytes(hashlib.blake2b(f"budget:{tenant.pk}".encode(), digest_size=8).digest(), "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def budget_check(*, tenant, api_key=None) -> None:
    """Refuse to start a turn when a monthly budget is already spent (the POST's early 402).
    Not a guarantee by itself: the per-call reservation is what holds under concurrency."""
    now = timezone.now()
    for scope in (tenant_scope(tenant), api_key_scope(api_key)):
        if scope is None:
            continue
        spent = scope.spent_usd_fn(now)
        if spent >= scope.limit_usd:
            raise scope.refusal(spent, None)


def budget_reserve(*, tenant, turn, agent, candidate, estimate_usd: Decimal) -> Reservation | None:
    """Reserve `estimate_usd` for one call, atomically against every scope, or raise
    BudgetExhausted naming the first scope it does not fit in.

    Returns None when there is nothing to hold (no budget applies, or the call is free); raises
    LookupError when the turn is no longer running at this attempt (another worker has it)."""
    scopes = budget_scopes(tenant=tenant, turn=turn, agent=agent, candidate=candidate)
    if not scopes or estimate_usd <= 0:
        return None
    with transaction.atomic():
        _lock_tenant(tenant)
        now = timezone.now()
        for scope in scopes:
            spent = scope.spent_usd_fn(now)
            if spent + estimate_usd > scope.limit_usd:
                raise scope.refusal(spent, estimate_usd)
        held = Turn.objects.filter(pk=turn.pk, status=Turn.Status.RUNNING, attempt=turn.attempt).update(
            reserved_usd=estimate_usd,
            reserved_until=now + dt.timedelta(seconds=settings.BUDGET_RESERVATION_SECONDS),
            reserved_provider_id=candidate.provider_id,
        )
        if not held:
            raise LookupError(f"turn {turn.pk} is not running at attempt {turn.attempt}")
    return Reservation(turn_id=str(turn.pk), attempt=turn.attempt, amount_usd=estimate_usd)


_CLEARED = {"reserved_usd": ZERO, "reserved_until": None, "reserved_provider": None}


def budget_settle(*, turn, cost_usd: Decimal) -> None:
    """The call is done: its real cost joins the turn's settled spend, the reservation goes.
    One UPDATE, so there is no moment where the spend is counted twice or not at all."""
    Turn.objects.filter(pk=turn.pk, attempt=turn.attempt).update(cost_usd=F("cost_usd") + cost_usd, **_CLEARED)


def budget_release(*, turn) -> None:
    """The call failed before it cost anything: free the reservation."""
    Turn.objects.filter(pk=turn.pk, attempt=turn.attempt, reserved_until__isnull=False).update(**_CLEARED)


def budget_extend(*, turn) -> None:
    """A long call is still streaming: keep its reservation alive (the worker is)."""
    Turn.objects.filter(pk=turn.pk, attempt=turn.attempt, reserved_until__isnull=False).update(
        reserved_until=timezone.now() + dt.timedelta(seconds=settings.BUDGET_RESERVATION_SECONDS)
    )
