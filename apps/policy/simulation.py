"""Simulate a tool call: what it would change, whether that can be undone, and what the policy
would decide, without running it. Write tools answer through their own dry run."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound, ValidationError

from apps.policy.services import policy_decide
from apps.tools.registry import SideEffect, ToolContext, builtin_registry


def _find_tool(tenant, name: str):
    # Plugins register per tenant; when the registry offers a tenant-aware lookup, it is used.
    from apps.tools import registry

    lookup = getattr(registry, "tool_for_tenant", None)
    tool = lookup(tenant, name) if lookup else builtin_registry.get(name)
    if tool is None:
        raise NotFound(f"No tool named '{name}'.")
    return tool


def simulate_tool_call(*, tenant, user, tool_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    from apps.tools.registry import _argument_problem

    tool = _find_tool(tenant, tool_name)
    problem = _argument_problem(tool, arguments)
    if problem:
        raise ValidationError({"args": [problem]})
    decision = policy_decide(tenant=tenant, agent=None, tool=tool, arguments=arguments)
    result: dict[str, Any] = {
        "tool": tool.name,
        "side_effect": tool.side_effect,
        "policy": {"action": decision.action, "reason": decision.reason},
    }
    dry_run = getattr(tool, "dry_run", None)
    if dry_run is not None:
        plan = dry_run(ToolContext(tenant=tenant, user=user), arguments)
        result.update({"changes": [], "reversible": False, "rollback": "", "warnings": [], **plan})
    elif tool.side_effect == SideEffect.READ:
        result.update(
            {"changes": [], "reversible": True, "rollback": "Nothing to undo: the tool only reads.", "warnings": []}
        )
    elif tool.side_effect == SideEffect.EXTERNAL:
        result.update(
            {
                "changes": [],
                "reversible": False,
                "rollback": "None: the request leaves the platform and cannot be recalled.",
                "warnings": [f"{tool.name} contacts a host outside the platform."],
            }
        )
    else:
        result.update(
            {
                "changes": [],
                "reversible": False,
                "rollback": "Unknown: this write tool has no dry run.",
                "warnings": [f"{tool.name} changes data but cannot describe the change in advance."],
            }
        )
    return result
