"""The model router: roles, capabilities, policy, fallback order, and the budget check."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.agents import services
from apps.agents.models import ProviderKind
from apps.agents.providers.base import Usage
from apps.agents.routing import (
    BudgetExceeded,
    NoModelAvailable,
    check_cost_limit,
    complexity_score,
    cost_usd,
    estimate_cost_usd,
    estimate_tokens,
    select_model,
)
from apps.tenancy.principal import Actor
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
COMPLEX = (
    "Please analyze this code step by step, compare it with the design below and explain why it fails.\n"
    "```python\n" + "def handler(event):\n    return process(event)\n" * 20 + "```\n"
    "1. What is wrong?\n2. How would you refactor it?\n3. Which trade-off is best?"
)


@pytest.fixture
def catalog(tenant):
    """Two providers with models of different capabilities; returns models by short name."""
    local = services.provider_create(
        tenant=tenant, actor=ACTOR, kind=ProviderKind.OPENAI_COMPATIBLE, name="local",
        base_url="http://models.invalid/v1", models=[],
    )  # fmt: skip
    cloud = services.provider_create(tenant=tenant, actor=ACTOR, kind=ProviderKind.OPENAI, name="cloud", models=[])

    def add(provider, model_id, **kwargs):
        return services.catalog_model_create(tenant=tenant, provider=provider, model_id=model_id, **kwargs)

    return {
        "plain": add(local, "plain", supports_tools=False, supports_vision=False),
        "tools": add(local, "tools", supports_tools=True, supports_vision=False),
        "eyes": add(cloud, "eyes", supports_tools=True, supports_vision=True),
        "big": add(cloud, "big", supports_tools=True, supports_vision=False, input_per_mtok=Decimal("3"),
                   output_per_mtok=Decimal("15")),
        "mini": add(cloud, "gpt-4o-mini"),  # no own prices: the price table's
    }  # fmt: skip


def make_agent(tenant, catalog, **kwargs):
    defaults = {"name": "helper", "guide_model": catalog["tools"]}
    return services.agent_create(tenant=tenant, actor=ACTOR, **{**defaults, **kwargs})


def test_guide_answers_simple_messages(tenant, catalog):
    agent = make_agent(tenant, catalog, specialist_model=catalog["big"], vision_model=catalog["eyes"])
    selection = select_model(agent=agent, text="hi there", has_images=False, needs_tools=False)
    assert selection.chosen.ref == "local/tools"
    assert selection.role == "guide"
    assert selection.as_json() == {
        "candidates": ["local/tools"],
        "chosen": "local/tools",
        "reason": selection.reason,
        "complexity_score": selection.complexity_score,
    }
    assert "guide" in selection.reason


def test_images_go_to_the_vision_model(tenant, catalog):
    agent = make_agent(tenant, catalog, vision_model=catalog["eyes"])
    selection = select_model(agent=agent, text="what is this?", has_images=True, needs_tools=False)
    assert selection.chosen.ref == "cloud/eyes"
    assert selection.role == "vision"
    assert "images" in selection.reason


def test_images_without_any_vision_model_name_what_to_configure(tenant, catalog):
    agent = make_agent(tenant, catalog)
    with pytest.raises(NoModelAvailable) as raised:
        select_model(agent=agent, text="what is this?", has_images=True, needs_tools=False)
    assert "vision" in str(raised.value)
    assert "/api/roster/helper/model" in str(raised.value)


def test_complex_messages_go_to_the_specialist(tenant, catalog, settings):
    settings.ROUTER_SPECIALIST_THRESHOLD = 0.6
    agent = make_agent(tenant, catalog, specialist_model=catalog["big"])
    complex_pick = select_model(agent=agent, text=COMPLEX, has_images=False, needs_tools=False)
    assert complex_pick.complexity_score >= 0.6
    assert complex_pick.chosen.ref == "cloud/big"
    assert complex_pick.role == "specialist"
    assert [c.ref for c in complex_pick.candidates] == ["cloud/big", "local/tools"]  # the guide as fallback
    settings.ROUTER_SPECIALIST_THRESHOLD = 0.99
    assert select_model(agent=agent, text=COMPLEX, has_images=False, needs_tools=False).role == "guide"


def test_specialist_role_without_a_specialist_uses_the_guide(tenant, catalog, settings):
    settings.ROUTER_SPECIALIST_THRESHOLD = 0.1
    agent = make_agent(tenant, catalog)
    selection = select_model(agent=agent, text=COMPLEX, has_images=False, needs_tools=False)
    assert selection.role == "specialist"
    assert selection.chosen.ref == "local/tools"


def test_complexity_score_is_deterministic_and_bounded():
    assert complexity_score("") == 0.0
    assert complexity_score("hi") == 0.0
    assert complexity_score(COMPLEX) == complexity_score(COMPLEX)
    assert 0.6 <= complexity_score(COMPLEX) <= 1.0
    assert complexity_score("compare a and b") < complexity_score("compare a and b, step by step, and design c")
    assert complexity_score("x" * 10_000 + "```" + "analyze compare design" + "?" * 10) == 1.0


def test_preferred_models_follow_the_role_model_in_order(tenant, catalog):
    agent = make_agent(tenant, catalog, model_policy={"preferred_models": ["cloud/big", "cloud/eyes"]})
    selection = select_model(agent=agent, text="hi", has_images=False, needs_tools=False)
    assert [c.ref for c in selection.candidates] == ["local/tools", "cloud/big", "cloud/eyes"]


def test_require_tools_filters_out_models_without_tools(tenant, catalog):
    agent = make_agent(
        tenant, catalog, guide_model=catalog["plain"],
        model_policy={"require_tools": True, "preferred_models": ["cloud/big"]},
    )  # fmt: skip
    selection = select_model(agent=agent, text="hi", has_images=False, needs_tools=False)
    assert [c.ref for c in selection.candidates] == ["cloud/big"]
    assert "unavailable or lacks" in selection.reason


def test_require_tools_with_no_capable_model_refuses(tenant, catalog):
    agent = make_agent(tenant, catalog, guide_model=catalog["plain"], model_policy={"require_tools": True})
    with pytest.raises(NoModelAvailable) as raised:
        select_model(agent=agent, text="hi", has_images=False, needs_tools=False)
    assert "tools" in str(raised.value)


def test_require_vision_applies_without_images(tenant, catalog):
    agent = make_agent(tenant, catalog, model_policy={"require_vision": True, "preferred_models": ["cloud/eyes"]})
    assert select_model(agent=agent, text="hi", has_images=False, needs_tools=False).chosen.ref == "cloud/eyes"


def test_needs_tools_puts_tool_capable_models_first_without_dropping_others(tenant, catalog):
    agent = make_agent(tenant, catalog, guide_model=catalog["plain"], model_policy={"preferred_models": ["cloud/big"]})
    selection = select_model(agent=agent, text="hi", has_images=False, needs_tools=True)
    assert [c.ref for c in selection.candidates] == ["cloud/big", "local/plain"]


def test_disabled_models_and_providers_are_skipped(tenant, catalog):
    agent = make_agent(tenant, catalog, model_policy={"preferred_models": ["cloud/big", "local/plain"]})
    catalog["big"].enabled = False
    catalog["big"].save()
    services.provider_update(tenant=tenant, actor=ACTOR, provider=catalog["tools"].provider, enabled=False)
    with pytest.raises(NoModelAvailable) as raised:
        select_model(agent=agent, text="hi", has_images=False, needs_tools=False)
    assert "disabled" in str(raised.value)


def test_an_agent_without_models_uses_the_cheapest_enabled_one(tenant, catalog):
    agent = services.agent_create(tenant=tenant, actor=ACTOR, name="bare")
    selection = select_model(agent=agent, text="hi", has_images=False, needs_tools=False)
    assert selection.chosen.input_per_mtok + selection.chosen.output_per_mtok == 0
    assert "no model assigned" in selection.reason


def test_a_tenant_without_models_gets_a_message_naming_what_to_configure(tenant):
    agent = services.agent_create(tenant=tenant, actor=ACTOR, name="lonely")
    with pytest.raises(NoModelAvailable) as raised:
        select_model(agent=agent, text="hi", has_images=False, needs_tools=False)
    message = str(raised.value)
    assert "lonely" in message
    assert "OPENAI_API_KEY" in message
    assert "POST /api/providers" in message


def test_only_the_agents_tenant_models_are_considered(tenant, catalog):
    other = TenantFactory()
    services.tenant_bootstrap_agents(tenant=other, actor=ACTOR)
    agent = services.agent_create(tenant=tenant, actor=ACTOR, name="bare")
    selection = select_model(agent=agent, text="hi", has_images=False, needs_tools=False)
    assert all(c.provider_name in ("local", "cloud") for c in selection.candidates)


def test_catalog_models_without_prices_use_the_price_table(tenant, catalog):
    agent = make_agent(tenant, catalog, guide_model=catalog["mini"])
    chosen = select_model(agent=agent, text="hi", has_images=False, needs_tools=False).chosen
    assert (chosen.input_per_mtok, chosen.output_per_mtok) == (Decimal("0.15"), Decimal("0.60"))


def test_token_and_cost_estimates(tenant, catalog):
    agent = make_agent(tenant, catalog, guide_model=catalog["big"])
    big = select_model(agent=agent, text="hi", has_images=False, needs_tools=False).chosen
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcde") == 2
    assert estimate_cost_usd(big, 1_000_000, 1_000_000) == Decimal("18.000000")
    assert cost_usd(big, Usage(input_tokens=1000, output_tokens=100)) == Decimal("0.004500")


def test_budget_refuses_calls_estimated_above_the_limit(tenant, catalog):
    agent = make_agent(
        tenant, catalog, guide_model=catalog["big"], max_output_tokens=1000, model_policy={"max_cost_usd": 0.016}
    )
    big = select_model(agent=agent, text="hi", has_images=False, needs_tools=False).chosen
    # 1000 input at $3/M + 1000 output at $15/M = $0.018 > $0.016
    with pytest.raises(BudgetExceeded) as raised:
        check_cost_limit(agent=agent, candidate=big, input_tokens=1000)
    message = str(raised.value)
    assert "$0.018000" in message
    assert "$0.016" in message
    assert "max_cost_usd" in message
    assert check_cost_limit(agent=agent, candidate=big, input_tokens=100) == Decimal("0.015300")


def test_budget_output_estimate_defaults_to_1024_tokens(tenant, catalog):
    agent = make_agent(tenant, catalog, guide_model=catalog["big"], model_policy={"max_cost_usd": 0.015})
    big = select_model(agent=agent, text="hi", has_images=False, needs_tools=False).chosen
    with pytest.raises(BudgetExceeded):  # 1024 * $15/M = $0.01536
        check_cost_limit(agent=agent, candidate=big, input_tokens=0)


def test_no_limit_means_no_refusal(tenant, catalog):
    agent = make_agent(tenant, catalog, guide_model=catalog["big"])
    big = select_model(agent=agent, text="hi", has_images=False, needs_tools=False).chosen
    assert check_cost_limit(agent=agent, candidate=big, input_tokens=10_000_000) > 0
