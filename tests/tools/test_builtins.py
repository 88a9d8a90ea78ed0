from __future__ import annotations

from datetime import datetime

import pytest

from apps.tools.builtins.calculator import EXPRESSION_MAX_CHARS, evaluate
from apps.tools.registry import ToolContext, ToolError, builtin_registry, execute_tool


def call(name: str, **arguments):
    return execute_tool(tool=builtin_registry.get(name), arguments=arguments, context=ToolContext(tenant=None))


# --- current_time --------------------------------------------------------------------------------


def test_current_time_defaults_to_utc():
    outcome = call("current_time")
    assert outcome.ok
    data = outcome.data
    assert data["timezone"] == "UTC"
    assert data["utc"] == data["local"]
    assert datetime.fromisoformat(data["utc"]).utcoffset().total_seconds() == 0
    assert int(datetime.fromisoformat(data["utc"]).timestamp()) == data["unix"]


def test_current_time_in_a_named_zone_is_the_same_instant():
    data = call("current_time", timezone="Asia/Kolkata").data
    utc, local = datetime.fromisoformat(data["utc"]), datetime.fromisoformat(data["local"])
    assert local == utc
    assert local.utcoffset().total_seconds() == 5.5 * 3600
    assert data["weekday"] == local.strftime("%A")
    assert data["timezone"] == "Asia/Kolkata"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime"])
def test_current_time_refuses_unknown_zones(zone):
    outcome = call("current_time", timezone=zone)
    assert not outcome.ok
    assert outcome.error == f"Unknown time zone '{zone}'. Use an IANA name such as 'Europe/Paris'."


# --- calculator ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("1 + 2 * 3", 7),
        ("(17.5 * 4) / 3", 23.333333333333332),
        ("2 ** 10", 1024),
        ("7 // 2 + 7 % 2", 4),
        ("-(3 - 5)", 2),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(pi, 2)", 3.14),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("floor(2.7) + ceil(2.1)", 5),
        ("log10(1000)", 3.0),
        ("round(e ** 2, 3)", 7.389),
        ("2 ** -1", 0.5),
    ],
)
def test_calculator_computes(expression, result):
    outcome = call("calculator", expression=expression)
    assert outcome.ok, outcome.error
    assert outcome.data == {"expression": expression, "result": result}


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("__import__('os')", "Function '__import__' not defined"),
        ("__import__('os').system('id')", "Attribute is not available"),
        ("open('/etc/passwd')", "Function 'open' not defined"),
        ("os", "'os' is not defined"),
        ("(1).__class__", "Attribute is not available"),
        ("pi.real", "Attribute is not available"),
        ("sqrt.__globals__", "Attribute is not available"),
        ("'abc' * 3", "Only numbers are allowed"),
        ("[1, 2][0]", "Subscript is not available"),
        ("(lambda: 1)()", "Lambda Functions not implemented"),
        ("f'{1}'", "JoinedStr is not available"),
        ("1 if 1 else 2", "IfExp is not available"),
        ("1 < 2", "Compare is not available"),
        ("1 << 100000", "Not allowed in an expression"),
        ("True + 1", "Only numbers are allowed"),
        ("1j * 2", "Only numbers are allowed"),
        ("round(x=1)", "keyword is not available"),
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression, error):
    outcome = call("calculator", expression=expression)
    assert not outcome.ok
    assert error in outcome.error


@pytest.mark.parametrize("expression", ["x = 1", "1; 2", "import os", "1 +"])
def test_calculator_takes_one_expression_only(expression):
    outcome = call("calculator", expression=expression)
    assert not outcome.ok
    assert outcome.error.startswith("Not a valid expression")


@pytest.mark.parametrize(
    "expression",
    ["9**9**9", "10**10**10", "2**100000", "(10**999) ** 2", "10**600 * 10**600", "-9**9**9", "round(5, -10**9)"],
)
def test_calculator_refuses_huge_numbers_before_computing_them(expression):
    # Each would take minutes or gigabytes if computed; refusing them is immediate.
    outcome = call("calculator", expression=expression)
    assert not outcome.ok
    assert "digits" in outcome.error


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("1 / 0", "Division by zero."),
        ("sqrt(-1)", "Cannot compute that: math domain error."),
        ("(-8) ** (1/3)", "complex number"),
        ("1e308 * 10", "not a finite number"),
        ("2.5 ** 100000", "too large"),
        ("exp(1000)", "too large"),
        ("sqrt", "does not evaluate to a number"),
    ],
)
def test_calculator_reports_arithmetic_errors(expression, error):
    outcome = call("calculator", expression=expression)
    assert not outcome.ok
    assert error in outcome.error


def test_calculator_expressions_are_capped_in_length():
    too_long = "1+" * (EXPRESSION_MAX_CHARS // 2) + "1"
    outcome = call("calculator", expression=too_long)
    assert not outcome.ok
    assert "expression:" in outcome.error
    assert "is too long" in outcome.error
    with pytest.raises(ToolError, match="longer than 200 characters"):
        evaluate(too_long)


def test_a_result_of_a_thousand_digits_is_still_given():
    assert evaluate("10**999") == 10**999
