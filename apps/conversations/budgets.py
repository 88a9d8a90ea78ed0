"""Budgets that cannot be bypassed: every model call reserves its estimated cost first.

Before a model call the turn engine calls `budget_reserve()`. Under a per-tenant Postgres
advisory lock it adds up, for every budget scope that applies, what is settled (the monthly
ledger: `SpendLedger` rows per tenant and API key, `PlatformSpend` rows per platform provider)
and what is reserved by calls in flight (`Turn.reserved_usd` while `reserved_until` is in the
future), and refuses the call when the estimate does not fit. Then it records the reservation
on the turn's row. After the call `budget_settle()` adds the real cost to `Turn.cost_usd`, clears
the reservation and adds the cost to the ledger rows, in one statement; a failed call's
`budget_release()` only clears the reservation. So 20 concurrent turns see each other's
reservations, and the overspend is bounded by how far real costs exceed their estimates.

Why a ledger: summing the month's Turn rows grew with the tenant's turns (22 ms p50 per call at
5,000 turns); the ledger has one row per key (and per platform provider) a tenant used this
month, so a check costs the same at a million turns. Every settled cost goes through
`budget_settle()` exactly once per model call (the engine's final write no longer writes
`cost_usd`), which is what keeps the ledger equal to the Turn rows.

Crash safety: a reservation is a row value with an expiry, not a lock. A worker that dies
holding one stops extending it, and after BUDGET_RESERVATION_SECONDS it no longer counts; the
settled spend was already written call by call.

Scopes are a list of `BudgetScope(key, limit_usd, spent_usd_sql, label)`: the tenant's monthly
budget, the API key's monthly budget, the agent's per-turn limit, and the operator's per-tenant
cap of a platform provider. Each scope's spend is an SQL expression (subqueries on the ledger and
on the live reservations), and all the scopes of a call are measured in one SELECT under the
lock: one round trip however many budgets apply. Adding a scope is a few lines here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.agents.models import PlatformSpend, Provider
from apps.agents.selectors import platform_cap_of
from apps.conversations.models import SpendLedger, Turn

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
    # Settled + live reservations at `now`, as an SQL expression and its parameters:
    # `measure()` evaluates those of every scope of a call in one SELECT.
    spent_usd_sql: Callable[[dt.datetime], tuple[str, list]]
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


def ledger_month(now: dt.datetime | None = None) -> dt.date:
    """The ledger's key for `now`'s calendar month (UTC, the server's time zone)."""
    return month_start(now).date()


# The spend of a scope is SQL: scalar subqueries added up, so that `measure()` sends one SELECT
# for every scope of a call. Written as SQL, not built with the ORM, because compiling the
# equivalent querysets took 2.7 ms of Python per call, ten times what the query takes to run.
# Only table names (the models') are formatted in; every value is a parameter (the S608 noqas).
Fragment = tuple[str, list]


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _ledger_sum(tenant_id, now: dt.datetime, *, api_key_id=None) -> Fragment:
    """Settled spend of the month: the tenant's ledger rows (one per key used), or one key's."""
    sql = f"(SELECT coalesce(sum(cost_usd), 0) FROM {_table(SpendLedger)} WHERE tenant_id = %s AND month = %s"  # noqa: S608
    params = [tenant_id, ledger_month(now)]
    if api_key_id is not None:
        sql, params = sql + " AND api_key_id = %s", [*params, api_key_id]
    return sql + ")", params


def _platform_sum(tenant_id, platform_id, now: dt.datetime) -> Fragment:
    sql = (
        f"(SELECT coalesce(sum(cost_usd), 0) FROM {_table(PlatformSpend)} "  # noqa: S608
        "WHERE tenant_id = %s AND platform_provider_id = %s AND month = %s)"
    )
    return sql, [tenant_id, platform_id, ledger_month(now)]


def _live_sum(tenant_id, now: dt.datetime, *, exclude_turn_id=None, api_key_id=None, platform_id=None) -> Fragment:
    """Reservations of calls in flight. `reserved_until > now` implies the partial index's
    `reserved_until IS NOT NULL`, so this reads `turn_tenant_reserved`: the few turns of the
    tenant that hold one, however many turns the month has. The calling turn's own reservation
    is left out: it is about to be replaced."""
    sql = f"(SELECT coalesce(sum(reserved_usd), 0) FROM {_table(Turn)} WHERE tenant_id = %s"  # noqa: S608
    sql += " AND reserved_until > %s"
    params: list = [tenant_id, now]
    if exclude_turn_id is not None:
        sql, params = sql + " AND id <> %s", [*params, exclude_turn_id]
    if api_key_id is not None:
        sql, params = sql + " AND api_key_id = %s", [*params, api_key_id]
    if platform_id is not None:  # any of the tenant's links to it (re-linking makes a new row)
        links = f"SELECT id FROM {_table(Provider)} WHERE tenant_id = %s AND platform_id = %s"  # noqa: S608
        sql += f" AND reserved_provider_id IN ({links})"
        params = [*params, tenant_id, platform_id]
    return sql + ")", params


def _plus(*fragments: Fragment) -> Fragment:
    return " + ".join(sql for sql, _ in fragments), [p for _, params in fragments for p in params]


def spend_query(scopes: list[BudgetScope], now: dt.datetime) -> Fragment:
    """The one SELECT that measures every scope of a call."""
    parts = [scope.spent_usd_sql(now) for scope in scopes]
    return "SELECT " + ", ".join(sql for sql, _ in parts), [p for _, params in parts for p in params]


def measure(scopes: list[BudgetScope], now: dt.datetime) -> list[Decimal]:
    """Every scope's spend (settled + live reservations) at `now`, in one round trip."""
    if not scopes:
        return []
    sql, params = spend_query(scopes, now)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Decimal(value) for value in cursor.fetchone()]


def _ledger(tenant_id, now: dt.datetime, **where):
    return SpendLedger.objects.filter(tenant_id=tenant_id, month=ledger_month(now), **where)


def tenant_month_spend(*, tenant, now: dt.datetime | None = None) -> Decimal:
    """This calendar month's settled spend of the tenant (the ledger; no reservations)."""
    total = _ledger(tenant.pk, now or timezone.now()).aggregate(total=Sum("cost_usd"))["total"]
    return total or ZERO


def api_key_month_spend(*, api_key, now: dt.datetime | None = None) -> Decimal:
    """This calendar month's settled spend of the turns started with `api_key`."""
    row = _ledger(api_key.tenant_id, now or timezone.now(), api_key=api_key).values_list("cost_usd", flat=True)
    return row.first() or ZERO


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
        spent_usd_sql=lambda now: _plus(
            _ledger_sum(tenant.pk, now), _live_sum(tenant.pk, now, exclude_turn_id=exclude_turn_id)
        ),
        label=f"this tenant's monthly budget of ${limit:.2f}",
        how_to_raise="An owner can raise monthly_budget_usd with PATCH /api/tenants/current.",
    )


def api_key_scope(api_key, *, exclude_turn_id=None) -> BudgetScope | None:
    limit = _decimal(getattr(api_key, "monthly_budget_usd", None)) if api_key is not None else None
    if limit is None:
        return None
    tenant_id = api_key.tenant_id
    return BudgetScope(
        key=SCOPE_API_KEY,
        limit_usd=limit,
        spent_usd_sql=lambda now: _plus(
            _ledger_sum(tenant_id, now, api_key_id=api_key.pk),
            _live_sum(tenant_id, now, exclude_turn_id=exclude_turn_id, api_key_id=api_key.pk),
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
        spent_usd_sql=lambda _now: (
            f"(SELECT coalesce(max(cost_usd), 0) FROM {_table(Turn)} WHERE id = %s)",  # noqa: S608
            [turn.pk],
        ),
        label=f"agent '{agent.name}''s limit of ${limit} per turn (model_policy.max_cost_usd)",
        how_to_raise="Raise max_cost_usd, pick a cheaper model, lower max_output_tokens or shorten the conversation.",
    )


def platform_scope_for(candidate, tenant, *, exclude_turn_id=None) -> BudgetScope | None:
    """The operator's per-tenant cap of the platform provider `candidate` runs on, if any.

    Spent is the tenant's PlatformSpend row of the month plus the live reservations of its turns
    on any link to that platform provider (a link is the tenant's Provider row with `platform`
    set; unlinking and linking again makes a new row, so the join is on the platform, not on
    the link). A tenant's own providers have no such cap."""
    provider = getattr(candidate, "provider", None)
    platform_id = getattr(provider, "platform_id", None)
    if platform_id is None:
        return None
    # Read for every call, never cached across calls: an operator who lowers a cap means it for
    # the next call. Within one call it is read once, here.
    limit = platform_cap_of(tenant_id=tenant.pk, platform_provider_id=platform_id)
    if limit is None:
        return None
    return BudgetScope(
        key=SCOPE_PLATFORM,
        limit_usd=limit,
        spent_usd_sql=lambda now: _plus(
            _platform_sum(tenant.pk, platform_id, now),
            _live_sum(tenant.pk, now, exclude_turn_id=exclude_turn_id, platform_id=platform_id),
        ),
        label=f"the operator's monthly cap of ${limit:.2f} on this tenant's use of platform provider '{provider.name}'",
        how_to_raise="Ask the operator to raise the cap, or choose a model on another provider.",
    )


def budget_scopes(*, tenant, turn, agent, candidate) -> list[BudgetScope]:
    """Every budget one model call of `turn` on `candidate` is charged against."""
    scopes = [
        tenant_scope(tenant, exclude_turn_id=turn.pk),
        api_key_scope(turn.api_key, exclude_turn_id=turn.pk) if turn.api_key_id else None,
        agent_turn_scope(agent, turn) if agent is not None else None,
        platform_scope_for(candidate, tenant, exclude_turn_id=turn.pk),
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
    scopes = [scope for scope in (tenant_scope(tenant), api_key_scope(api_key)) if scope is not None]
    for scope, spent in zip(scopes, measure(scopes, timezone.now()), strict=True):
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
        for scope, spent in zip(scopes, measure(scopes, now), strict=True):
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


_SETTLE_SQL = """
WITH settled AS (
    UPDATE {turn} SET cost_usd = cost_usd + %(cost)s,
        reserved_usd = CASE WHEN attempt = %(attempt)s THEN 0 ELSE reserved_usd END,
        reserved_until = CASE WHEN attempt = %(attempt)s THEN NULL ELSE reserved_until END,
        reserved_provider_id = CASE WHEN attempt = %(attempt)s THEN NULL ELSE reserved_provider_id END
    WHERE id = %(turn_id)s
    RETURNING tenant_id, api_key_id, attempt = %(attempt)s AS owned
), ledger AS (
    INSERT INTO {ledger} AS cur (tenant_id, api_key_id, month, cost_usd, calls, updated_at)
    SELECT tenant_id, api_key_id, %(month)s, %(cost)s, 1, %(now)s FROM settled
    ON CONFLICT (tenant_id, month, api_key_id) DO UPDATE
    SET cost_usd = cur.cost_usd + EXCLUDED.cost_usd, calls = cur.calls + 1, updated_at = EXCLUDED.updated_at
){platform}
SELECT coalesce(bool_or(owned), false) FROM settled
"""

_PLATFORM_SQL = """, platform AS (
    INSERT INTO {platform_spend} AS cur (tenant_id, platform_provider_id, month, cost_usd, calls, updated_at)
    SELECT tenant_id, %(platform_id)s, %(month)s, %(cost)s, 1, %(now)s FROM settled
    ON CONFLICT (tenant_id, platform_provider_id, month) DO UPDATE
    SET cost_usd = cur.cost_usd + EXCLUDED.cost_usd, calls = cur.calls + 1, updated_at = EXCLUDED.updated_at
)"""


def budget_settle(*, turn, cost_usd: Decimal, provider=None) -> bool:
    """The call is done: its real cost joins the turn's settled spend, the reservation goes, and
    the month's ledger rows (the tenant's, per API key; the platform provider's when `provider`
    is a link to one) grow by it.

    One statement (data-modifying CTEs), so it is atomic on its own and one round trip: there is
    no moment where the spend is counted twice or not at all. The cost is charged even when
    another worker has taken the turn over meanwhile (the provider billed the call all the
    same); only the reservation is left alone then, since it is the new attempt's. Returns
    whether the turn was still ours at this attempt."""
    now = timezone.now()
    platform_id = getattr(provider, "platform_id", None)
    platform = (
        _PLATFORM_SQL.format(platform_spend=connection.ops.quote_name(PlatformSpend._meta.db_table))
        if platform_id is not None
        else ""
    )
    sql = _SETTLE_SQL.format(
        turn=connection.ops.quote_name(Turn._meta.db_table),
        ledger=connection.ops.quote_name(SpendLedger._meta.db_table),
        platform=platform,
    )
    params = {
        "cost": cost_usd,
        "turn_id": turn.pk,
        "attempt": turn.attempt,
        "month": ledger_month(now),
        "now": now,
        "platform_id": platform_id,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (owned,) = cursor.fetchone()
    return owned


def budget_release(*, turn) -> None:
    """The call failed before it cost anything: free the reservation."""
    Turn.objects.filter(pk=turn.pk, attempt=turn.attempt, reserved_until__isnull=False).update(**_CLEARED)


def budget_extend(*, turn) -> None:
    """A long call is still streaming: keep its reservation alive (the worker is)."""
    Turn.objects.filter(pk=turn.pk, attempt=turn.attempt, reserved_until__isnull=False).update(
        reserved_until=timezone.now() + dt.timedelta(seconds=settings.BUDGET_RESERVATION_SECONDS)
    )
