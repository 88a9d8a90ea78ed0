"""The built-in offline provider: deterministic, no network, no key.

It lets a fresh install complete real turns, tool calls included, and gives tests a model whose
every answer is known in advance. Its answers start with "(offline model)" and its results carry
`offline=True`, so nobody mistakes them for a real model's.

Behaviour, decided from the conversation alone:

1. The conversation ends with tool results -> a text answer summarising them
   ("(offline model) current_time returned: ...").
2. Otherwise, on the latest user message:
   - it asks for the time or date and a `current_time` tool is offered -> call `current_time` `{}`;
   - it contains an http(s) URL and an `http_get` tool is offered -> call `http_get` `{"url": ...}`;
   - it contains an arithmetic expression and a `calculator` tool is offered ->
     call `calculator` `{"expression": "<the expression>"}`;
   - it starts with "remember (that) ..." and a `remember` tool is offered ->
     call `remember` `{"fact": "<the rest>"}`;
   - it is "remind me (today|tomorrow) at H[:MM][am|pm] to X" or "remind me in N
     seconds|minutes|hours to X" and a `schedule_task` tool is offered -> call `schedule_task`
     `{"prompt": "Reminder: X", "at": "<that time, UTC>", "timezone": "UTC"}` (the one answer that
     reads the clock: "tomorrow" needs today's date);
   - else a labeled echo of the message (what was typed; attached files are named with their
     type, size and how much of them was read) with a hint on configuring a real provider, followed by
     the memories the context recalled for this turn, if any ("I remember: ..."), so a fresh
     install shows long-term memory working across sessions without a real model.
Text streams through `on_text` word by word; usage counts ceil(characters / 4).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable

from apps.agents.providers.base import (
    ChatMessage,
    ChatResult,
    ModelListing,
    ProbeResult,
    ToolCallRequest,
    ToolSpec,
    Usage,
)
from apps.agents.providers.common import attachments_in, content_text, image_parts, typed_text
from apps.agents.tokens import estimate_tokens
from apps.core.constants import MEMORY_CONTEXT_HEADER as MEMORY_HEADER

OFFLINE_KIND = "offline"
OFFLINE_MODEL = "offline-small"
LABEL = "(offline model)"
ECHO_LIMIT = 200
TOOL_OUTPUT_LIMIT = 500
FACT_LIMIT = 2000  # the remember tool's own limit
CONFIGURE_HINT = "Configure a provider (OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST) for real answers."

_URL_RE = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TIME_RE = re.compile(r"\b(time|date|clock|today)\b|\bwhat day\b", re.IGNORECASE)
# Digits, operators and parentheses, starting and ending on an operand.
_EXPRESSION_RE = re.compile(r"[\d(.][\d\s.+\-*/^%()]*[\d).]")
_HAS_OPERATION_RE = re.compile(r"[\d.)]\s*[-+*/^%]\s*[\d.(]")
_WORD_RE = re.compile(r"\S+\s*|\s+")
_REMEMBER_RE = re.compile(r"^\s*(?:please\s+)?remember(?:\s+that)?[\s:,]+(?P<fact>\S.*)$", re.IGNORECASE | re.DOTALL)
RECALLED_SHOWN = 3
_REMIND_AT_RE = re.compile(
    r"^\s*(?:please\s+)?remind\s+me\s+(?P<day>today|tomorrow)?\s*at\s+(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?"
    r"\s*(?P<ampm>am|pm)?\s+(?:to\s+)?(?P<what>\S.*?)[.!]?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_REMIND_IN_RE = re.compile(
    r"^\s*(?:please\s+)?remind\s+me\s+in\s+(?P<count>\d{1,5})\s*(?P<unit>seconds?|minutes?|hours?)"
    r"\s+(?:to\s+)?(?P<what>\S.*?)[.!]?\s*$",
    re.IGNORECASE | re.DOTALL,
)


class OfflineClient:
    kind = OFFLINE_KIND
    name = "offline"

    def chat(
        self,
        *,
        model: str,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        temperature: float | None = None,
        max_output_tokens: int | None = None,
        on_text: Callable[[str], None] = lambda _: None,
    ) -> ChatResult:
        served = model or OFFLINE_MODEL
        input_tokens = estimate_tokens("".join(content_text(m.content) for m in messages))
        offered = {tool.name for tool in tools}

        trailing_results = _trailing_tool_results(messages)
        if trailing_results:
            return self._answer(_summarise(trailing_results), served, input_tokens, on_text)

        user = next((m for m in reversed(messages) if m.role == "user"), None)
        # What was typed: an attached file's contents must not trigger a tool (a CSV of numbers
        # is no arithmetic question).
        text = typed_text(user.content).strip() if user else ""
        number = 1 + sum(len(m.tool_calls) for m in messages if m.role == "assistant")
        if "current_time" in offered and _TIME_RE.search(text):
            return self._call("current_time", {}, number, served, input_tokens)
        url = _URL_RE.search(text)
        if url and "http_get" in offered:
            return self._call("http_get", {"url": url.group(0).rstrip(".,;:!?)")}, number, served, input_tokens)
        expression = find_expression(text)
        if expression and "calculator" in offered:
            return self._call("calculator", {"expression": expression}, number, served, input_tokens)
        reminder = reminder_arguments(text) if "schedule_task" in offered else None
        if reminder:
            return self._call("schedule_task", reminder, number, served, input_tokens)
        remembered = _REMEMBER_RE.match(text)
        if remembered and "remember" in offered:
            fact = remembered.group("fact").strip()[:FACT_LIMIT]
            return self._call("remember", {"fact": fact}, number, served, input_tokens)

        answer = f"{LABEL} I received: {text[:ECHO_LIMIT]}." if text else f"{LABEL} I received no text."
        files = attachments_in(user.content) if user else []
        if files:
            answer += " " + describe_attachments(files)
        images = len([p for p in image_parts(user.content) if "attachment" not in p]) if user else 0
        if images:
            answer += f" I cannot see images ({images} attached)."
        answer = f"{answer} {CONFIGURE_HINT}"
        recalled = _recalled_memories(messages)
        if recalled:
            answer += " I remember: " + " | ".join(recalled[:RECALLED_SHOWN])
        return self._answer(answer, served, input_tokens, on_text)

    def _answer(self, text: str, model: str, input_tokens: int, on_text: Callable[[str], None]) -> ChatResult:
        for word in _WORD_RE.findall(text):
            on_text(word)
        return ChatResult(
            text=text,
            usage=Usage(input_tokens=input_tokens, output_tokens=estimate_tokens(text)),
            finish_reason="stop",
            model=model,
            provider_kind=self.kind,
            offline=True,
        )

    def _call(self, name: str, arguments: dict, number: int, model: str, input_tokens: int) -> ChatResult:
        raw = json.dumps(arguments)
        return ChatResult(
            text="",
            tool_calls=[
                ToolCallRequest(id=f"call_offline_{number}", name=name, arguments=arguments, raw_arguments=raw)
            ],
            usage=Usage(input_tokens=input_tokens, output_tokens=estimate_tokens(name + raw)),
            finish_reason="tool_calls",
            model=model,
            provider_kind=self.kind,
            offline=True,
        )

    def list_models(self) -> list[ModelListing]:
        return [ModelListing(id=OFFLINE_MODEL, owned_by="agentplatform")]

    def probe(self) -> ProbeResult:
        return ProbeResult(reachable=True, latency_ms=0.0, models_seen=1)


def describe_attachments(files: list[dict]) -> str:
    """ "I was given 2 files: notes.txt (text/plain, 1234 bytes, 1200 characters read); ..."."""
    described = []
    for info in files:
        name = info.get("name") or info.get("ref") or "a file"
        facts = [info[key] for key in ("mime_type",) if info.get(key)]
        if info.get("size") is not None:
            facts.append(f"{info['size']} bytes")
        shown = info.get("shown")
        if shown == "text":
            read = f"{info.get('chars_shown', 0)} of {info.get('chars', 0)} characters read"
            facts.append(read if info.get("truncated") else f"all {info.get('chars', 0)} characters read")
        elif shown == "image":
            facts.append("an image I cannot see")
        elif shown == "missing":
            facts.append("deleted")
        else:
            facts.append("not read")
        described.append(f"{name} ({', '.join(facts)})")
    noun = "file" if len(files) == 1 else "files"
    return f"I was given {len(files)} {noun}: " + "; ".join(described) + "."


def reminder_arguments(text: str, *, now: dt.datetime | None = None) -> dict | None:
    """schedule_task's arguments for "remind me tomorrow at 9 to call the bank", or None."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    relative = _REMIND_IN_RE.match(text)
    if relative:
        unit = relative.group("unit").lower().rstrip("s")
        seconds = int(relative.group("count")) * {"second": 1, "minute": 60, "hour": 3600}[unit]
        when, what = now + dt.timedelta(seconds=seconds), relative.group("what")
    else:
        match = _REMIND_AT_RE.match(text)
        if not match:
            return None
        hour, minute = int(match.group("hour")), int(match.group("minute") or 0)
        ampm = (match.group("ampm") or "").lower()
        if ampm == "pm" and hour < 12:
            hour += 12
        elif ampm == "am" and hour == 12:
            hour = 0
        if hour > 23 or minute > 59:
            return None
        day = now.date() + dt.timedelta(days=1 if (match.group("day") or "").lower() == "tomorrow" else 0)
        when = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC)
        if when <= now:  # "at 9" said after nine today means tomorrow
            when += dt.timedelta(days=1)
        what = match.group("what")
    return {
        "prompt": f"Reminder: {what.strip()}",
        "at": when.replace(microsecond=0).isoformat(),
        "timezone": "UTC",
    }


def find_expression(text: str) -> str:
    """The first arithmetic expression in `text` ("what is 12*(3+4)?" -> "12*(3+4)"), or ""."""
    for match in _EXPRESSION_RE.finditer(text):
        candidate = match.group(0).strip()
        if _HAS_OPERATION_RE.search(candidate) and candidate.count("(") == candidate.count(")"):
            return re.sub(r"\s+", "", candidate)
    return ""


def _recalled_memories(messages: list[ChatMessage]) -> list[str]:
    """The memory lines the context put in the system prompt for this turn (see MEMORY_HEADER)."""
    system = next((content_text(m.content) for m in messages if m.role == "system"), "")
    _, found, section = system.partition(MEMORY_HEADER + "\n")
    if not found:
        return []
    lines = []
    for line in section.splitlines():
        if not line.startswith("- "):
            break
        lines.append(line[2:].strip())
    return lines


def _trailing_tool_results(messages: list[ChatMessage]) -> list[ChatMessage]:
    results: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append(message)
    return list(reversed(results))


# Tool results reach models fenced as untrusted data (apps.tools.registry.untrusted_tool_output);
# the offline model reports only what is inside the fence.
_FENCE = re.compile(r"^<tool_output[^>]*>\n[^\n]*\n(?P<body>.*)\n</tool_output>$", re.DOTALL)


def _unfenced(text: str) -> str:
    match = _FENCE.match(text)
    return match.group("body") if match else text


def _summarise(results: list[ChatMessage]) -> str:
    parts = []
    for result in results:
        output = _unfenced(content_text(result.content).strip())
        if len(output) > TOOL_OUTPUT_LIMIT:
            output = output[:TOOL_OUTPUT_LIMIT] + "…"
        parts.append(f"{result.name or 'the tool'} returned: {output}")
    return f"{LABEL} " + "; ".join(parts)
