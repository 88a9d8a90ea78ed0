"""Usage (`/usage/`): model cost and tokens per day and per agent over the last 30 UTC days.

Viewers too: every turn's cost and tokens are theirs to read in the API (`GET /api/turns/{id}`),
this is their sum. The numbers come from one selector (conversations.selectors.
usage_by_day_and_agent), which the stats rollups will answer later; the chart reads them from a
JSON data island (not executed, so the CSP holds) and static/dashboard/usage.js draws it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.shortcuts import render
from django.utils import timezone

from apps.conversations import selectors as conversation_selectors
from apps.dashboard.access import member_required
from apps.dashboard.nav import NavItem, nav_add
from apps.tenancy.models import Role

nav_add("Tenant", NavItem("Usage", "usage", "chart", role=Role.VIEWER))  # what the API lets a viewer read


DAYS = 30


def usage_window(now: dt.datetime, days: int = DAYS) -> list[dt.date]:
    """The last `days` UTC days, today included, oldest first."""
    today = now.astimezone(dt.UTC).date()
    return [today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def usage_summary(rows: list[dict], days: list[dt.date]) -> dict:
    """The selector's rows as the page needs them: a series per agent over every day (zeros where
    nothing ran), token totals per day, and totals per agent and overall."""
    index = {day: position for position, day in enumerate(days)}
    agents: dict[str, dict] = {}
    input_tokens = [0] * len(days)
    output_tokens = [0] * len(days)
    per_day = [{"day": day, "turns": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": Decimal(0)} for day in days]
    for row in rows:
        position = index.get(row["day"])
        if position is None:
            continue
        key = str(row["agent_id"] or "")
        agent = agents.setdefault(
            key,
            {
                "name": row["agent"],
                "cost": [0.0] * len(days),
                "turns": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": Decimal(0),
            },
        )
        agent["cost"][position] += float(row["cost_usd"])
        for total in (agent, per_day[position]):
            total["turns"] += row["turns"]
            total["input_tokens"] += row["input_tokens"]
            total["output_tokens"] += row["output_tokens"]
            total["cost_usd"] += row["cost_usd"]
        input_tokens[position] += row["input_tokens"]
        output_tokens[position] += row["output_tokens"]
    by_agent = sorted(
        agents.values(), key=lambda a: (-a["cost_usd"], -a["input_tokens"] - a["output_tokens"], a["name"])
    )
    totals = {
        "turns": sum(a["turns"] for a in by_agent),
        "input_tokens": sum(input_tokens),
        "output_tokens": sum(output_tokens),
        "cost_usd": sum((a["cost_usd"] for a in by_agent), Decimal(0)),
    }
    chart = {
        # uPlot's x values: seconds since the epoch, at each UTC midnight.
        "days": [int(dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC).timestamp()) for day in days],
        "agents": [{"name": a["name"], "cost": [round(c, 6) for c in a["cost"]]} for a in by_agent],
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }
    return {"by_agent": by_agent, "per_day": per_day[::-1], "totals": totals, "chart": chart}


@member_required(role=Role.VIEWER)
def usage(request):
    days = usage_window(timezone.now())
    since = dt.datetime.combine(days[0], dt.time.min, tzinfo=dt.UTC)
    rows = conversation_selectors.usage_by_day_and_agent(tenant=request.principal.tenant, since=since)
    summary = usage_summary(rows, days)
    context = {**summary, "first_day": days[0], "last_day": days[-1], "has_usage": bool(rows)}
    return render(request, "dashboard/usage/index.html", context)
