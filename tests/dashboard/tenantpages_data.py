"""Rows the Tenant pages' tests need: turns with tokens and cost on a given day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from apps.agents import services as agent_services
from apps.conversations.models import Turn
from apps.tenancy.principal import Actor
from tests.factories import turn_for_message


def agent_named(tenant, name: str):
    return agent_services.agent_create(tenant=tenant, actor=Actor.system("test"), name=name)


def spent_turn(tenant, agent, *, days_ago: int = 0, input_tokens: int = 0, output_tokens: int = 0, cost: str = "0"):
    """A finished turn `days_ago` UTC days back that used these tokens and cost this much."""
    turn = turn_for_message(
        tenant=tenant,
        agent=agent,
        status=Turn.Status.COMPLETED,
        usage={"input_tokens": input_tokens, "output_tokens": output_tokens},
        cost_usd=Decimal(cost),
    )
    noon = timezone.now().astimezone(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    Turn.objects.filter(pk=turn.pk).update(created_at=noon - dt.timedelta(days=days_ago))
    return turn
