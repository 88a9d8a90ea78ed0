"""The contract between the turn engine and tools.

A `Tool` is a name, a description, a JSON-schema for its arguments, a side-effect class and a
handler. The engine offers `registry.specs(names)` to the model and runs a call with
`execute_tool()`, which validates the arguments, times the call, caps the output and turns any
exception into a failed `ToolOutcome` (a failing tool never fails the turn).

Tenant, user, agent, session and turn reach a handler only through `ToolContext`, which the
server fills from the turn; nothing a model writes in the arguments can change them.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

logger = logging.getLogger(__name__)


class SideEffect:
    READ = "read"  # looks, changes nothing
    WRITE = "write"  # changes the tenant's own data
    EXTERNAL = "external"  # reaches outside the platform (network)


@dataclass(frozen=True)
class ToolContext:
    tenant: Any  # apps.tenancy.models.Tenant
    agent: Any | None = None  # apps.agents.models.Agent
    user: Any | None = None
    session_id: str = ""
    turn_id: str = ""


class ToolError(Exception):
    """Raised by a handler for an expected failure; the message is shown to the model."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    handler: Callable[[ToolContext, dict[str, Any]], Any]
    side_effect: str = SideEffect.READ
    source: str = "builtin"  # builtin | python plugin name | mcp plugin name


@dataclass
class ToolOutcome:
    ok: bool
    output: str  # what the model sees: JSON or text, capped in size
    error: str = ""
    duration_ms: int = 0
    truncated: bool = False
    data: Any = field(default=None)  # the handler's raw return value, for the record


# --- the registry --------------------------------------------------------------------------------


class ToolRegistry:
    """Tools by name. One instance holds the built-ins; plugins will get registries of their own."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, tool: Tool) -> Tool:
        # A second tool under a taken name would silently change what every agent that enabled
        # the first one can do, so it is an error rather than an override.
        if tool.name in self._tools:
            raise ValueError(f"A tool named '{tool.name}' is already registered.")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def tools(self, names: Iterable[str]) -> list[Tool]:
        """The known tools among `names`, sorted by name, unknown and repeated names dropped.

        Sorted rather than in the caller's order so the tool block of a prompt is byte-identical
        from turn to turn however an agent's list was edited; provider prompt caches depend on it.
        """
        return [self._tools[name] for name in sorted(set(names)) if name in self._tools]

    def specs(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """What the model is offered: `{name, description, parameters}` per known tool."""
        return [
            {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
            for tool in self.tools(names)
        ]


def tools_for_agent(agent) -> list[Tool]:
    """The tools an agent may call: its `enabled_tools` that exist, in the registry's order.

    A name that no longer exists (a tool removed, a typo in the admin) is skipped rather than
    failing every turn of the agent."""
    if agent is None:
        return []
    names = agent.enabled_tools or []
    if not isinstance(names, list):
        logger.warning("Agent %s has a non-list enabled_tools; no tools offered.", getattr(agent, "pk", None))
        return []
    return builtin_registry.tools(name for name in names if isinstance(name, str))


# --- running a call ------------------------------------------------------------------------------

# How much of a validation or ToolError message reaches the model: jsonschema quotes the offending
# value, which may be as long as whatever the model wrote.
ERROR_MAX_CHARS = 500


def execute_tool(*, tool: Tool, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
    """Run one tool call. Never raises for a failing tool: every failure is a `ToolOutcome(ok=False)`.

    The model only ever sees the `error` text: a ToolError's own message, a schema message naming
    the field, or "Tool failed: <ExceptionType>" for a bug (the traceback goes to the log, not to
    the model, which could echo it to the user).
    """
    started = time.perf_counter()

    def failed(error: str) -> ToolOutcome:
        return ToolOutcome(ok=False, output="", error=_clip(error, ERROR_MAX_CHARS), duration_ms=_ms_since(started))

    try:
        # Inside the try: a tool whose own schema is broken fails like any other broken tool.
        problem = _argument_problem(tool, arguments)
        if problem:
            return failed(problem)
        result = tool.handler(context, arguments)
        output = result if isinstance(result, str) else json.dumps(result, default=str, ensure_ascii=False)
    except ToolError as exc:
        return failed(str(exc) or type(exc).__name__)
    except SoftTimeLimitExceeded:
        # The worker is taking the whole task down; that is not this tool failing, and the turn
        # engine must see it to record the turn as timed out.
        raise
    except Exception as exc:  # a broken tool must not fail the turn; the log keeps the traceback
        logger.exception(
            "Tool %s failed (tenant=%s turn=%s)", tool.name, getattr(context.tenant, "pk", None), context.turn_id
        )
        return failed(f"Tool failed: {type(exc).__name__}")
    output, truncated = _cap_output(output, settings.TOOL_OUTPUT_MAX_CHARS)
    return ToolOutcome(ok=True, output=output, duration_ms=_ms_since(started), truncated=truncated, data=result)


def _argument_problem(tool: Tool, arguments: Any) -> str:
    """A readable reason the arguments do not fit the tool's schema, or "" when they do."""
    if not isinstance(arguments, dict):
        return f"Invalid arguments for {tool.name}: expected a JSON object, got {type(arguments).__name__}."
    validator = _validator(json.dumps(tool.parameters or {}, sort_keys=True))
    # The most relevant few errors, so a model can fix a call in one retry rather than one per field.
    errors = sorted(validator.iter_errors(arguments), key=jsonschema.exceptions.relevance, reverse=True)
    if not errors:
        return ""
    return f"Invalid arguments for {tool.name}: " + "; ".join(_describe(error) for error in errors[:3])


def _describe(error: jsonschema.ValidationError) -> str:
    # `required` and `additionalProperties` errors sit on the parent object and name the field in
    # their message; every other error sits on the field itself, so the path names it.
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    # Keyed by the schema's text so a tool rebuilt with the same schema reuses the checked
    # validator; check_schema is the slow part and a broken schema is a bug worth an exception.
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def _cap_output(output: str, max_chars: int) -> tuple[str, bool]:
    if len(output) <= max_chars:
        return output, False
    marker = f"\n[output truncated: {len(output)} characters, the first {{shown}} shown]"
    shown = max(0, max_chars - len(marker.format(shown=max_chars)))
    return output[:shown] + marker.format(shown=shown), True


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


# --- the built-ins -------------------------------------------------------------------------------

# Imported here rather than at the top: the built-in modules import the dataclasses above from this
# module (apps/tools/builtins/__init__.py explains the other half of this arrangement).
from apps.tools.builtins.calculator import calculator_tool  # noqa: E402
from apps.tools.builtins.clock import current_time_tool  # noqa: E402
from apps.tools.builtins.http_get import http_get_tool  # noqa: E402

builtin_registry = ToolRegistry()
for _tool in (current_time_tool, calculator_tool, http_get_tool):
    builtin_registry.register(_tool)
del _tool
