"""What the bench/ scripts share: the percentile they report, and the `--json` convention.

`--json`: after its human table, a script prints ONE JSON object with its figures as the LAST
line of stdout (`{"bench": "<name>", ...}`), so runs can be compared by a program:

    python bench/embeddings.py --json | tail -n 1 | jq .runtimes
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from decimal import Decimal


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (the value of a real sample, no interpolation); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def summary(values: list[float], *, digits: int = 3) -> dict:
    """p50, p95, p99, mean and max of a list of milliseconds (or anything), rounded."""
    if not values:
        return {"n": 0}
    figures = {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "max": max(values),
    }
    return {"n": len(values), **{k: round(v, digits) for k, v in figures.items()}}


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="after the table, print the figures as one JSON object (the last line)"
    )


def _plain(value):
    # NaN and infinities are not JSON: a figure that could not be measured is null. Four decimals
    # are more than any figure here is worth; Decimals (from SQL) become numbers.
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def emit_json(bench: str, figures: dict) -> None:
    """The last line of stdout: `{"bench": bench, **figures}` (flushed: nothing may follow it)."""
    print(json.dumps({"bench": bench, **_plain(figures)}, default=str), flush=True)
