"""The turn observatory's timing waterfall, from what the turn core records.

Every bar is placed on one time axis that starts when the turn was queued (`Turn.created_at`):
the wait in the queue (until a worker first claimed it, `started_at`), assembling the context
(`metadata.timings.context_at` / `context_ms`, the last attempt's), each model call
(`metadata.timings.model_calls`, written by turns/model_call.py), each tool call (`ToolCall`
`started_at` / `duration_ms`) and each wait for a human (`Approval` `created_at` / `decided_at`).
The page draws them as plain bars whose offsets and widths static/dashboard/observatory.js sets
from the `left` and `width` percentages here (no style attributes: the CSP is 'self').
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils import timezone
from django.utils.dateparse import parse_datetime


@dataclass(frozen=True)
class Bar:
    kind: str  # queue | context | model | tool | approval
    label: str
    start_ms: float
    ms: float
    detail: str = ""
    left: float = 0.0  # percent of the axis
    width: float = 0.0

    @property
    def ms_text(self) -> str:
        return duration_text(self.ms)


def duration_text(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms >= 10_000:
        return f"{ms / 1000:.1f} s"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def _offset_ms(start: datetime.datetime, when: datetime.datetime | None) -> float | None:
    if when is None:
        return None
    return max(0.0, (when - start).total_seconds() * 1000)


def _parse(value) -> datetime.datetime | None:
    if not value:
        return None
    return parse_datetime(value) if isinstance(value, str) else value


def waterfall(*, turn, tool_calls, approvals) -> dict:
    """{"bars": [Bar...], "total_ms", "totals": {phase: ms}, "per_call_model_times": bool}."""
    t0 = turn.created_at
    timings = (turn.metadata or {}).get("timings") or {}
    bars: list[Bar] = []
    started = _offset_ms(t0, turn.started_at)
    if started is not None:
        bars.append(Bar("queue", "Queue", 0.0, started, "queued until a worker claimed it"))
    context_ms = timings.get("context_ms")
    if context_ms is not None:
        at = _offset_ms(t0, _parse(timings.get("context_at"))) or started or 0.0
        bars.append(Bar("context", "Context", at, float(context_ms), "system prompt, rules, skills, memory, history"))
    calls = timings.get("model_calls") or []
    for index, call in enumerate(calls, start=1):
        at = _offset_ms(t0, _parse(call.get("at")))
        if at is None:
            continue
        detail = f"step {call.get('step')}" + ("" if call.get("ok", True) else " · failed, fell back")
        bars.append(Bar("model", f"Model call {index}: {call.get('model', '')}", at, float(call.get("ms", 0)), detail))
    if not calls and timings.get("model_ms"):
        # Turns recorded before per-call times: the total, placed after the context.
        context_end = (bars[-1].start_ms + bars[-1].ms) if bars else 0.0
        bars.append(Bar("model", "Model (all calls)", context_end, float(timings["model_ms"]), "total model time"))
    for call in tool_calls:
        at = _offset_ms(t0, call.started_at)
        if at is None:
            continue
        ms = call.duration_ms
        if ms is None and call.finished_at is not None:
            ms = (call.finished_at - call.started_at).total_seconds() * 1000
        bars.append(Bar("tool", f"Tool: {call.name}", at, float(ms or 0), f"step {call.step} · {call.status}"))
    now = timezone.now()
    for approval in approvals:
        at = _offset_ms(t0, approval.created_at)
        end = _offset_ms(t0, approval.decided_at or now)
        at, end = at or 0.0, end or 0.0
        bars.append(Bar("approval", f"Approval: {approval.tool_name}", at, max(0.0, end - at), approval.status))
    bars.sort(key=lambda bar: bar.start_ms)
    end_ms = turn.duration_ms if turn.duration_ms is not None and turn.started_at else None
    total = max([started or 0.0] + [bar.start_ms + bar.ms for bar in bars])
    if turn.finished_at is not None:
        total = max(total, _offset_ms(t0, turn.finished_at) or 0.0)
    scale = total or 1.0
    placed = [
        Bar(
            bar.kind,
            bar.label,
            bar.start_ms,
            bar.ms,
            bar.detail,
            left=round(100 * bar.start_ms / scale, 3),
            # A bar too short to see still shows as a sliver.
            width=max(0.4, round(100 * bar.ms / scale, 3)),
        )
        for bar in bars
    ]
    totals = {
        "queue": started,
        "context": float(context_ms) if context_ms is not None else None,
        "model": timings.get("model_ms"),
        "tools": timings.get("tool_ms"),
        "approval": sum(bar.ms for bar in bars if bar.kind == "approval") or None,
        "run": float(end_ms) if end_ms is not None else None,
    }
    if totals["run"] is not None:
        # What the platform did besides the context, the model and the tools (writes, events,
        # policy, streaming), and the waits for people, which are no one's overhead.
        measured = sum(totals[key] or 0.0 for key in ("context", "model", "tools", "approval"))
        totals["other"] = max(0.0, totals["run"] - measured) or None
    else:
        totals["other"] = None
    return {
        "bars": placed,
        "total_ms": total,
        "total_text": duration_text(total),
        "totals": {key: duration_text(value) if value is not None else None for key, value in totals.items()},
        "per_call_model_times": bool(calls),
    }
