"""The policy hook: before every tool call the turn engine asks `policy_decide()` what to do.

For now the rules live in JSON: the tenant's `settings["tool_policy"]` maps tool names to an
action, `settings["default_tool_action"]` covers tools it does not name, and an agent's
`model_policy["tool_policy"]` overrides the tenant for that agent. A fuller policy model (safe
mode, argument rules) replaces this later behind the same signature.

A rule that is not one of the three actions denies: whoever wrote `"http_get": "block"` meant
to stop the tool, and guessing otherwise would let it run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from apps.tools.registry import Tool

Action = Literal["allow", "deny", "require_approval"]
ALLOW: Action = "allow"
DENY: Action = "deny"
REQUIRE_APPROVAL: Action = "require_approval"
ACTIONS = frozenset({ALLOW, DENY, REQUIRE_APPROVAL})


@dataclass(frozen=True)
class PolicyDecision:
    action: Action
    reason: str  # which rule decided; stored on the tool call and shown to operators


def policy_decide(*, tenant, agent, tool: Tool, arguments: dict[str, Any]) -> PolicyDecision:  # noqa: ARG001
    """Agent rule for the tool, else tenant rule for the tool, else the tenant's default action.

    `arguments` is unused by these rules; it is part of the signature for argument-aware rules.
    """
    if agent is not None:
        agent_rules = _as_dict(getattr(agent, "model_policy", None)).get("tool_policy", {})
        decision = _rule(agent_rules, tool.name, where=f"agent '{getattr(agent, 'name', agent)}'")
        if decision is not None:
            return decision
    tenant_settings = _as_dict(getattr(tenant, "settings", None))
    decision = _rule(tenant_settings.get("tool_policy", {}), tool.name, where="tenant")
    if decision is not None:
        return decision
    if "default_tool_action" in tenant_settings:
        return _decision(tenant_settings["default_tool_action"], "tenant default_tool_action")
    return PolicyDecision(ALLOW, f"no rule names '{tool.name}' and the tenant sets no default_tool_action: allow")


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _rule(rules: Any, tool_name: str, *, where: str) -> PolicyDecision | None:
    if rules is None:  # "tool_policy": null reads as "no rules"
        return None
    if not isinstance(rules, dict):
        return PolicyDecision(DENY, f"{where} tool_policy is not an object; denied until it is fixed")
    if tool_name not in rules:
        return None
    return _decision(rules[tool_name], f"{where} tool_policy rule for '{tool_name}'")


def _decision(value: Any, source: str) -> PolicyDecision:
    action = value.strip().lower() if isinstance(value, str) else None
    if action not in ACTIONS:
        return PolicyDecision(DENY, f"{source} is not one of allow, deny, require_approval; denied")
    return PolicyDecision(action, f"{source}: {action}")
