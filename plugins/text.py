"""The `text` plugin: small, exact text utilities a model gets wrong when it counts by eye."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from apps.tools.plugins import PythonPlugin
from apps.tools.registry import SideEffect, Tool, ToolContext

TEXT_MAX_CHARS = 200_000
WORDS_PER_MINUTE = 230
_WORD_RE = re.compile(r"\b[\w'-]+\b", re.UNICODE)
_SENTENCE_RE = re.compile(r"[.!?]+(?:\s|$)")


def stats(_context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    text = arguments["text"]
    words = _WORD_RE.findall(text)
    return {
        "characters": len(text),
        "characters_without_spaces": sum(1 for char in text if not char.isspace()),
        "words": len(words),
        "lines": text.count("\n") + 1 if text else 0,
        "sentences": len(_SENTENCE_RE.findall(text)) or (1 if words else 0),
        "reading_minutes": math.ceil(len(words) / WORDS_PER_MINUTE) if words else 0,
    }


def slugify(_context: ToolContext, arguments: dict[str, Any]) -> dict[str, str]:
    normalized = unicodedata.normalize("NFKD", arguments["text"]).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", normalized.lower()).strip("-")
    return {"slug": slug[: arguments.get("max_length") or 80].rstrip("-")}


_TEXT = {"type": "string", "maxLength": TEXT_MAX_CHARS}

plugin = PythonPlugin(
    name="text",
    description="Exact text statistics and URL slugs.",
    version="1.0.0",
    tools=(
        Tool(
            name="stats",
            description="Count characters, words, lines and sentences of a text, and its reading time in minutes.",
            parameters={
                "type": "object",
                "properties": {"text": {**_TEXT, "description": "The text to measure."}},
                "required": ["text"],
                "additionalProperties": False,
            },
            handler=stats,
            side_effect=SideEffect.READ,
        ),
        Tool(
            name="slugify",
            description="Turn a title into a lower-case ASCII slug for URLs and file names.",
            parameters={
                "type": "object",
                "properties": {
                    "text": {**_TEXT, "maxLength": 1000, "description": "A title or phrase."},
                    "max_length": {"type": "integer", "minimum": 1, "maximum": 200},
                },
                "required": ["text"],
                "additionalProperties": False,
            },
            handler=slugify,
            side_effect=SideEffect.READ,
        ),
    ),
)
