from __future__ import annotations

import pytest

from apps.agents.models import Agent
from apps.tenancy.models import Tenant
from apps.tools.policy import PolicyDecision, policy_decide
from apps.tools.registry import builtin_registry

HTTP_GET = builtin_registry.get("http_get")


def decide(*, tenant_settings=None, agent_policy=None, with_agent=True) -> PolicyDecision:
    tenant = Tenant(slug="acme", name="Acme", settings=tenant_settings or {})
    agent = Agent(name="helper", model_policy=agent_policy or {}) if with_agent else None
    return policy_decide(tenant=tenant, agent=agent, tool=HTTP_GET, arguments={"url": "https://example.com"})


def test_with_no_rules_tools_are_allowed_and_the_reason_says_so():
    decision = decide()
    assert decision.action == "allow"
    assert "no rule names 'http_get'" in decision.reason


@pytest.mark.parametrize("action", ["allow", "deny", "require_approval"])
def test_a_tenant_rule_for_the_tool_decides(action):
    decision = decide(tenant_settings={"tool_policy": {"http_get": action}, "default_tool_action": "deny"})
    assert decision == PolicyDecision(action, f"tenant tool_policy rule for 'http_get': {action}")


def test_the_tenant_default_covers_tools_without_a_rule():
    decision = decide(
        tenant_settings={"tool_policy": {"calculator": "allow"}, "default_tool_action": "require_approval"}
    )
    assert decision == PolicyDecision("require_approval", "tenant default_tool_action: require_approval")


def test_an_agent_rule_overrides_the_tenant():
    decision = decide(
        tenant_settings={"tool_policy": {"http_get": "deny"}},
        agent_policy={"tool_policy": {"http_get": "allow"}},
    )
    assert decision == PolicyDecision("allow", "agent 'helper' tool_policy rule for 'http_get': allow")


def test_an_agent_can_be_stricter_than_the_tenant():
    decision = decide(
        tenant_settings={"default_tool_action": "allow"},
        agent_policy={"tool_policy": {"http_get": "require_approval"}},
    )
    assert decision.action == "require_approval"
    assert decision.reason.startswith("agent 'helper'")


def test_an_agent_rule_for_another_tool_leaves_the_tenant_in_charge():
    decision = decide(
        tenant_settings={"tool_policy": {"http_get": "deny"}},
        agent_policy={"tool_policy": {"calculator": "allow"}},
    )
    assert decision.action == "deny"
    assert decision.reason.startswith("tenant tool_policy rule")


def test_without_an_agent_the_tenant_decides():
    assert decide(tenant_settings={"tool_policy": {"http_get": "deny"}}, with_agent=False).action == "deny"


def test_actions_are_read_case_insensitively():
    assert decide(tenant_settings={"tool_policy": {"http_get": " Require_Approval "}}).action == "require_approval"


@pytest.mark.parametrize(
    "tenant_settings",
    [
        {"tool_policy": {"http_get": "block"}},
        {"tool_policy": {"http_get": None}},
        {"tool_policy": {"http_get": {"action": "allow"}}},
        {"default_tool_action": "maybe"},
        {"tool_policy": ["http_get"]},
    ],
)
def test_a_rule_that_is_not_an_action_denies(tenant_settings):
    decision = decide(tenant_settings=tenant_settings)
    assert decision.action == "deny"
    assert "denied" in decision.reason


def test_a_null_tool_policy_means_no_rules():
    assert decide(tenant_settings={"tool_policy": None}).action == "allow"
