from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from apps.agents.models import Agent
from apps.tools.registry import (
    SideEffect,
    Tool,
    ToolContext,
    ToolError,
    ToolRegistry,
    builtin_registry,
    execute_tool,
    tools_for_agent,
)

CONTEXT = ToolContext(tenant=None, turn_id="turn-1")
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city"],
    "additionalProperties": False,
}


def make_tool(name: str = "weather", handler=None, parameters=None) -> Tool:
    return Tool(
        name=name,
        description=f"The {name} tool.",
        parameters=SCHEMA if parameters is None else parameters,
        handler=handler or (lambda _context, arguments: {"city": arguments["city"]}),
    )


def returns(value):
    return lambda _context, _arguments: value


# --- the registry --------------------------------------------------------------------------------


def test_a_second_tool_with_a_taken_name_is_refused():
    registry = ToolRegistry()
    registry.register(make_tool("weather"))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(make_tool("weather"))


def test_specs_are_sorted_by_name_and_skip_unknown_and_repeated_names():
    registry = ToolRegistry()
    for name in ("zeta", "alpha", "mid"):
        registry.register(make_tool(name))
    specs = registry.specs(["mid", "nope", "zeta", "alpha", "mid"])
    assert [spec["name"] for spec in specs] == ["alpha", "mid", "zeta"]
    assert specs[0] == {"name": "alpha", "description": "The alpha tool.", "parameters": SCHEMA}
    assert registry.specs([]) == []


def test_get_and_names():
    registry = ToolRegistry()
    tool = registry.register(make_tool("weather"))
    assert registry.get("weather") is tool
    assert registry.get("missing") is None
    assert registry.names() == ["weather"]


def test_the_builtins_are_registered():
    # Other apps add built-ins of their own (apps.memory registers remember/recall when it loads).
    assert {
        "calculator",
        "current_time",
        "http_get",
        "workspace_list",
        "workspace_read",
        "workspace_write",
    } <= set(builtin_registry.names())
    assert builtin_registry.get("http_get").side_effect == SideEffect.EXTERNAL
    assert builtin_registry.get("calculator").side_effect == SideEffect.READ


def test_an_agent_gets_its_enabled_tools_that_exist():
    agent = Agent(name="helper", enabled_tools=["http_get", "no_such_tool", "calculator", "calculator"])
    assert [tool.name for tool in tools_for_agent(agent)] == ["calculator", "http_get"]


@pytest.mark.parametrize("enabled", [[], None, "calculator", [1, None]])
def test_an_agent_without_a_usable_tool_list_gets_none(enabled):
    assert tools_for_agent(Agent(name="helper", enabled_tools=enabled)) == []


def test_no_agent_no_tools():
    assert tools_for_agent(None) == []


# --- execute_tool --------------------------------------------------------------------------------


def test_a_successful_call_returns_json_and_the_raw_data():
    outcome = execute_tool(tool=make_tool(), arguments={"city": "Lyon"}, context=CONTEXT)
    assert outcome.ok
    assert json.loads(outcome.output) == {"city": "Lyon"}
    assert outcome.data == {"city": "Lyon"}
    assert (outcome.error, outcome.truncated) == ("", False)


def test_values_json_cannot_encode_are_written_as_text():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    tool = make_tool(handler=returns([{"at": when, "price": Decimal("1.50")}]))
    outcome = execute_tool(tool=tool, arguments={"city": "Lyon"}, context=CONTEXT)
    assert json.loads(outcome.output) == [{"at": "2026-01-02 03:04:05+00:00", "price": "1.50"}]


def test_a_text_result_is_passed_as_is():
    tool = make_tool(handler=returns("plain text"))
    assert execute_tool(tool=tool, arguments={"city": "Lyon"}, context=CONTEXT).output == "plain text"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "'city' is a required property"),
        ({"city": 5}, "city: 5 is not of type 'string'"),
        ({"city": "Lyon", "days": 30}, "days: 30 is greater than the maximum of 7"),
        ({"city": "Lyon", "units": "C"}, "'units' was unexpected"),
        ("city=Lyon", "expected a JSON object, got str"),
    ],
)
def test_invalid_arguments_fail_naming_the_field_without_calling_the_handler(arguments, expected):
    calls = []
    tool = make_tool(handler=lambda _context, arguments: calls.append(arguments))
    outcome = execute_tool(tool=tool, arguments=arguments, context=CONTEXT)
    assert not outcome.ok
    assert outcome.error.startswith("Invalid arguments for weather: ")
    assert expected in outcome.error
    assert outcome.output == ""
    assert calls == []


def test_every_problem_is_reported_in_one_go():
    outcome = execute_tool(tool=make_tool(), arguments={"days": 0, "units": "C"}, context=CONTEXT)
    assert "'city' is a required property" in outcome.error
    assert "days: 0 is less than the minimum of 1" in outcome.error
    assert "'units' was unexpected" in outcome.error


def test_a_tool_error_becomes_a_failed_outcome_with_its_message():
    def handler(context, arguments):
        raise ToolError("Lyon is not covered.")

    outcome = execute_tool(tool=make_tool(handler=handler), arguments={"city": "Lyon"}, context=CONTEXT)
    assert (outcome.ok, outcome.error, outcome.output) == (False, "Lyon is not covered.", "")


def test_a_crashing_tool_fails_with_the_exception_type_only_and_is_logged(caplog):
    def handler(context, arguments):
        return {"token": "s3cr3t"}["missing"]

    with caplog.at_level(logging.ERROR, logger="apps.tools.registry"):
        outcome = execute_tool(tool=make_tool(handler=handler), arguments={"city": "Lyon"}, context=CONTEXT)
    assert (outcome.ok, outcome.error) == (False, "Tool failed: KeyError")
    assert "s3cr3t" not in outcome.error
    assert "Tool weather failed" in caplog.text
    assert caplog.records[-1].exc_info is not None


def test_an_unserialisable_result_is_a_failure_not_a_crash():
    circular: dict = {}
    circular["self"] = circular
    outcome = execute_tool(tool=make_tool(handler=returns(circular)), arguments={"city": "x"}, context=CONTEXT)
    assert (outcome.ok, outcome.error) == (False, "Tool failed: ValueError")


def test_a_tool_with_a_broken_schema_fails_without_raising():
    tool = make_tool(name="broken", parameters={"type": "no-such-type"})
    outcome = execute_tool(tool=tool, arguments={}, context=CONTEXT)
    assert (outcome.ok, outcome.error) == (False, "Tool failed: SchemaError")


def test_the_worker_time_limit_is_not_swallowed():
    def handler(context, arguments):
        raise SoftTimeLimitExceeded()

    with pytest.raises(SoftTimeLimitExceeded):
        execute_tool(tool=make_tool(handler=handler), arguments={"city": "Lyon"}, context=CONTEXT)


def test_output_is_capped_at_the_setting_with_a_marker(settings):
    settings.TOOL_OUTPUT_MAX_CHARS = 200
    tool = make_tool(handler=returns("x" * 1000))
    outcome = execute_tool(tool=tool, arguments={"city": "Lyon"}, context=CONTEXT)
    assert outcome.ok
    assert outcome.truncated
    assert len(outcome.output) <= 200
    shown = outcome.output.count("x")
    assert outcome.output == "x" * shown + f"\n[output truncated: 1000 characters, the first {shown} shown]"
    assert outcome.data == "x" * 1000


def test_output_at_the_limit_is_untouched(settings):
    settings.TOOL_OUTPUT_MAX_CHARS = 200
    outcome = execute_tool(tool=make_tool(handler=returns("y" * 200)), arguments={"city": "x"}, context=CONTEXT)
    assert (outcome.output, outcome.truncated) == ("y" * 200, False)


def test_duration_is_measured():
    def handler(context, arguments):
        time.sleep(0.02)
        return "done"

    outcome = execute_tool(tool=make_tool(handler=handler), arguments={"city": "Lyon"}, context=CONTEXT)
    assert outcome.duration_ms >= 20


def test_the_handler_gets_the_server_side_context():
    seen = []
    tool = make_tool(handler=lambda context, _arguments: seen.append(context))
    execute_tool(tool=tool, arguments={"city": "Lyon"}, context=CONTEXT)
    assert seen == [CONTEXT]
