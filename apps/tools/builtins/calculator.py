"""`calculator`: arithmetic the model should not do in its head.

simpleeval walks the expression's AST instead of calling eval(); on top of its defaults this
evaluator is narrowed to numbers, arithmetic operators and a few math functions, with no names
beyond pi and e, no attributes, subscripts, strings, comparisons or comprehensions, and with
limits on exponents and result sizes so one short expression cannot pin a worker's CPU.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

import simpleeval

from apps.tools.registry import SideEffect, Tool, ToolContext, ToolError

EXPRESSION_MAX_CHARS = 200
# Bigger results are refused before they are computed: 10**1000 is already far past any real
# calculation, and Python refuses to print integers past 4,300 digits anyway.
RESULT_MAX_DIGITS = 1000
RESULT_MAX_BITS = int(RESULT_MAX_DIGITS * math.log2(10)) + 1
ROUND_MAX_DIGITS = 100

_FUNCTIONS = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": lambda x, ndigits=None: round(x) if ndigits is None else round(x, _bounded_ndigits(ndigits)),
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
}
_NAMES = {"pi": math.pi, "e": math.e}


def _check_magnitude(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > RESULT_MAX_BITS:
        raise ToolError(f"The result has more than {RESULT_MAX_DIGITS} digits.")
    return value


def _power(base: Any, exponent: Any) -> Any:
    # Estimate the size before computing: 9**9**9 would otherwise run for minutes.
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1
    if exact and exponent * math.log10(abs(base)) > RESULT_MAX_DIGITS:
        raise ToolError(f"The result has more than {RESULT_MAX_DIGITS} digits.")
    return _check_magnitude(base**exponent)


def _multiply(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > RESULT_MAX_BITS:
        raise ToolError(f"The result has more than {RESULT_MAX_DIGITS} digits.")
    return left * right


def _bounded_ndigits(ndigits: Any) -> int:
    # round(5, -10**9) computes 10**(10**9) internally.
    if not isinstance(ndigits, int) or abs(ndigits) > ROUND_MAX_DIGITS:
        raise ToolError(f"round() takes a whole number of digits between -{ROUND_MAX_DIGITS} and {ROUND_MAX_DIGITS}.")
    return ndigits


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _multiply,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


class _ArithmeticEval(simpleeval.SimpleEval):
    """simpleeval with only the nodes arithmetic needs."""

    def __init__(self) -> None:
        super().__init__(operators=dict(_OPERATORS), functions=dict(_FUNCTIONS), names=dict(_NAMES))
        allowed = (ast.Name, ast.UnaryOp, ast.BinOp, ast.Call, ast.Constant)
        self.nodes = {node: handler for node, handler in self.nodes.items() if node in allowed}
        self.nodes[ast.Constant] = self._eval_number

    @staticmethod
    def _eval_number(node: ast.Constant) -> int | float:
        # bool is an int subclass; strings, bytes, None and complex are not numbers here.
        if type(node.value) not in (int, float):
            raise simpleeval.FeatureNotAvailable("Only numbers are allowed.")
        return node.value


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression; ToolError when it is not one or is too big."""
    if len(expression) > EXPRESSION_MAX_CHARS:
        raise ToolError(f"The expression is longer than {EXPRESSION_MAX_CHARS} characters.")
    try:
        # mode="eval" accepts one expression only: no statements, assignments or `;` chains.
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"Not a valid expression: {exc.msg}.") from exc
    try:
        result = _ArithmeticEval().eval(expression, previously_parsed=tree.body)
    except ToolError:
        raise
    except simpleeval.InvalidExpression as exc:
        raise ToolError(f"Not allowed in an expression: {exc}") from exc
    except ZeroDivisionError as exc:
        raise ToolError("Division by zero.") from exc
    except OverflowError as exc:
        raise ToolError("The result is too large.") from exc
    except (ValueError, TypeError) as exc:
        # math domain errors (sqrt(-1), log(0)) and wrong argument counts.
        raise ToolError(f"Cannot compute that: {exc}.") from exc
    if isinstance(result, complex):
        raise ToolError("The result is a complex number; only real results are supported.")
    if type(result) not in (int, float):
        raise ToolError("The expression does not evaluate to a number.")
    if isinstance(result, float) and not math.isfinite(result):
        raise ToolError("The result is not a finite number.")
    return _check_magnitude(result)


def calculator(_context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    expression = arguments["expression"]
    return {"expression": expression, "result": evaluate(expression)}


calculator_tool = Tool(
    name="calculator",
    description=(
        "Evaluate an arithmetic expression exactly: + - * / // % ** and parentheses, "
        "sqrt, abs, round, min, max, floor, ceil, log, log10, exp, pi, e."
    ),
    parameters={
        "type": "object",
        "properties": {
            "expression": {
                "type": "string",
                "minLength": 1,
                "maxLength": EXPRESSION_MAX_CHARS,
                "description": "For example '(17.5 * 4) / 3' or 'sqrt(2) * pi'.",
            }
        },
        "required": ["expression"],
        "additionalProperties": False,
    },
    handler=calculator,
    side_effect=SideEffect.READ,
)
