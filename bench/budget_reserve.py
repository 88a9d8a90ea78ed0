"""Budget reserve + settle per model call, by how many turns the tenant has this month.

    python bench/budget_reserve.py                       # 0, 5,000 and 100,000 turns
    python bench/budget_reserve.py --turns 0 1000000     # the 1M-turn tenant
    python bench/budget_reserve.py --json                # the figures as one JSON object, last line

It runs against its own database (`agentplatform_bench_budgets` on the same server as
DATABASE_URL, or the embedded one; created and migrated here), never the platform's data.

For each size the tenant gets that many turns created this month (bulk_create, each with a
cost), its ledger is built from them with the migration's backfill (as an upgrade would), and
ten other turns hold live reservations. Then one running turn does `budget_reserve()` +
`budget_settle()` (the engine's two calls around every model call) N times, timed end to end,
under two configurations:

- `tenant`: the tenant's monthly budget only;
- `all scopes`: the tenant's budget, the API key's, and the operator's cap of the platform
  provider the model runs on (the most a call is checked against).

Reported per size: p50 / p95 / max ms of reserve + settle; the statements one pair sends
(BEGIN and COMMIT included; tenant / all scopes); for comparison, the query the ledger replaced
(SUM(cost_usd) of the tenant's turns of the month), p50 ms; and one `SELECT 1` round trip, p50 ms,
to read the rest against (on a loaded machine a round trip costs far more than the SQL). The plan of the
tenant scope's spend query at the largest size is printed too.

DESIGN.md's budget for the whole per-turn platform overhead is p50 ≤ 15 ms: this is a part of it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

from _common import add_json_flag, emit_json, percentile

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")

BENCH_DB = "agentplatform_bench_budgets"
ESTIMATE = Decimal("0.0001")
LIVE_RESERVATIONS = 10


def _bench_database_url() -> str:
    """DATABASE_URL (or the embedded server) with the database name swapped for the bench's."""
    import environ

    env = environ.Env()
    port = env.int("EMBEDDED_PG_PORT", default=55432)
    base = env("DATABASE_URL", default="") or f"postgres://postgres@127.0.0.1:{port}/agentplatform"
    return f"{base.rpartition('/')[0]}/{BENCH_DB}"


def _setup_django(url: str) -> None:
    import psycopg

    with psycopg.connect(url.rpartition("/")[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DB_POOL_MAX_SIZE", "4")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def _populate(size: int):
    """A fresh tenant with `size` costed turns this month, its ledger, a priced model on a link to
    a platform provider, and LIVE_RESERVATIONS other turns holding reservations."""
    import importlib
    from datetime import timedelta

    from django.apps import apps
    from django.db import connection
    from django.utils import timezone

    from apps.agents import services as agents
    from apps.agents.models import Agent, CatalogModel, PlatformProvider
    from apps.agents.routing import select_model
    from apps.conversations.models import ChatSession, Message, Turn
    from apps.tenancy import services as tenancy
    from apps.tenancy.models import Tenant
    from apps.tenancy.principal import Actor

    actor = Actor.system("bench")
    slug = f"bench-budget-{size}"
    Tenant.objects.filter(slug=slug).delete()
    PlatformProvider.objects.filter(name=f"bench-op-{size}").delete()
    tenant = tenancy.tenant_create(slug=slug, name=f"Budget benchmark {size}", actor=actor)
    platform = agents.platform_provider_save(
        actor=actor,
        platform_provider=None,
        name=f"bench-op-{size}",
        kind="openai_compatible",
        base_url="http://127.0.0.1:9/v1",  # never called: the bench reserves and settles only
        options={},
        api_key="bench-platform-key",
    )
    link = agents.platform_provider_link(tenant=tenant, actor=actor, platform_provider=platform, models=["m"])
    model = CatalogModel.objects.get(provider=link, model_id="m")
    model.input_per_mtok, model.output_per_mtok = Decimal("1"), Decimal("2")
    model.save()
    agent = Agent.objects.create(tenant=tenant, name="bench", guide_model=model)
    key, _ = tenancy.api_key_create(tenant=tenant, actor=actor, name="bench", scopes=["read", "write"])
    session = ChatSession.objects.create(tenant=tenant, agent=agent)
    message = Message.objects.create(tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": "x"}])

    def turn(**fields) -> Turn:
        return Turn(tenant=tenant, session=session, agent=agent, input_message=message, **fields)

    started = time.perf_counter()
    month_start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spread = max(1.0, (timezone.now() - month_start).total_seconds())
    Turn.objects.bulk_create(
        (
            turn(
                status=Turn.Status.COMPLETED,
                cost_usd=Decimal("0.000010"),
                step_count=1,
                api_key=key if i % 2 else None,
            )
            for i in range(size)
        ),
        batch_size=5000,
    )
    # Spread over the month so far (created_at is auto_now_add: set it after the insert).
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Turn._meta.db_table} SET created_at = %s + (random() * %s) * interval '1 second' "  # noqa: S608 - ours
            "WHERE tenant_id = %s",
            [month_start, spread, tenant.pk],
        )
    migration = importlib.import_module("apps.conversations.migrations.0004_spend_ledger")
    migration.backfill_spend_ledger(apps, type("Editor", (), {"connection": connection})())
    expires = timezone.now() + timedelta(hours=1)
    Turn.objects.bulk_create(
        turn(
            status=Turn.Status.RUNNING, attempt=1, reserved_usd=ESTIMATE, reserved_until=expires, reserved_provider=link
        )
        for _ in range(LIVE_RESERVATIONS)
    )
    runner = turn(status=Turn.Status.RUNNING, attempt=1, api_key=key)
    runner.save()
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Turn._meta.db_table}")
    populate_s = time.perf_counter() - started
    runner = Turn.objects.select_related("tenant", "agent", "api_key").get(pk=runner.pk)
    candidate = select_model(agent=agent, text="hi").chosen
    return tenant, key, platform, runner, candidate, populate_s


def _measure(tenant, runner, candidate, iterations: int) -> dict:
    from apps.conversations import budgets

    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        held = budgets.budget_reserve(
            tenant=tenant, turn=runner, agent=runner.agent, candidate=candidate, estimate_usd=ESTIMATE
        )
        assert held is not None, "no scope applied: the bench measures nothing"
        budgets.budget_settle(turn=runner, cost_usd=ESTIMATE, provider=candidate.provider)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": statistics.median(times), "p95": percentile(times, 95), "max": max(times)}


def _queries_per_call(tenant, runner, candidate) -> int:
    """Statements one reserve + settle sends (BEGIN/COMMIT included)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        _measure(tenant, runner, candidate, 1)
    return len(captured.captured_queries)


def _round_trip_ms(iterations: int) -> float:
    """`SELECT 1`: what one round trip to the database costs on this machine right now."""
    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        for _ in range(iterations):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _month_sum_ms(tenant, iterations: int) -> float:
    """What `_spent()` ran before the ledger: the month's turns summed."""
    from django.db.models import Sum
    from django.utils import timezone

    from apps.conversations.budgets import month_start
    from apps.conversations.models import Turn

    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        Turn.objects.filter(tenant=tenant, created_at__gte=month_start(timezone.now())).aggregate(Sum("cost_usd"))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _plan(tenant, runner, candidate) -> str:
    """EXPLAIN of the one SELECT a call with every scope sends under the lock."""
    from django.db import connection
    from django.utils import timezone

    from apps.conversations import budgets

    scopes = budgets.budget_scopes(tenant=tenant, turn=runner, agent=runner.agent, candidate=candidate)
    sql, params = budgets.spend_query(scopes, timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, nargs="+", default=[0, 5_000, 100_000], help="turns in the month")
    parser.add_argument("--iterations", type=int, default=300, help="reserve + settle pairs per measurement")
    add_json_flag(parser)
    args = parser.parse_args()
    _setup_django(_bench_database_url())

    from apps.agents.services import platform_access_set

    results = []
    plan = ""
    for size in args.turns:
        tenant, key, platform, runner, candidate, populate_s = _populate(size)
        tenant.settings = {**(tenant.settings or {}), "monthly_budget_usd": "1000000"}
        tenant.save()
        _measure(tenant, runner, candidate, 30)  # warm-up: connections, plans, caches
        only_tenant = _measure(tenant, runner, candidate, args.iterations)
        tenant_queries = _queries_per_call(tenant, runner, candidate)
        key.monthly_budget_usd = Decimal("1000000")
        key.save()
        platform_access_set(tenant=tenant, platform_provider=platform, allowed=True, monthly_cap_usd=Decimal("1000000"))
        runner.api_key = key
        every = _measure(tenant, runner, candidate, args.iterations)
        every_queries = _queries_per_call(tenant, runner, candidate)
        results.append(
            {
                "turns": size,
                "populate_s": round(populate_s, 1),
                "tenant": {k: round(v, 2) for k, v in only_tenant.items()},
                "all_scopes": {k: round(v, 2) for k, v in every.items()},
                "queries": {"tenant": tenant_queries, "all_scopes": every_queries},
                "month_sum_before_ms_p50": round(_month_sum_ms(tenant, 50), 2),
                "round_trip_ms_p50": round(_round_trip_ms(200), 3),
            }
        )
        plan = _plan(tenant, runner, candidate)

    print(f"Budget reserve + settle per model call ({args.iterations} calls per row; ms)")
    print(
        f"{'turns in month':>15} {'tenant p50':>11} {'p95':>7} {'max':>7} {'all scopes p50':>15} {'p95':>7} "
        f"{'max':>7} {'statements':>10} {'month SUM (before) p50':>23} {'SELECT 1 p50':>12}"
    )
    for r in results:
        t, a = r["tenant"], r["all_scopes"]
        print(
            f"{r['turns']:>15,} {t['p50']:>11.2f} {t['p95']:>7.2f} {t['max']:>7.2f} {a['p50']:>15.2f} "
            f"{a['p95']:>7.2f} {a['max']:>7.2f} {r['queries']['tenant']:>5} / {r['queries']['all_scopes']:<2} "
            f"{r['month_sum_before_ms_p50']:>23.2f} {r['round_trip_ms_p50']:>12.3f}"
        )
    print(f"\nPlan of the spend query (all scopes) at {args.turns[-1]:,} turns:\n{plan}")
    if args.json:
        emit_json("budget_reserve", {"iterations": args.iterations, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
