"""Token estimates before a model call: what budget checks and reservations charge.

OpenAI-family models are counted with tiktoken (o200k_base or cl100k_base, as tiktoken maps the
model) from the encoding files shipped in `tokenizer_data/`: nothing downloads at run time, and
each file is checked against the sha256 tiktoken itself expects. Other models (Claude, Llama,
the offline model) are estimated at characters / 4; the provider reports the real count after the
call. Both paths add what the request carries besides text: the JSON of the tool specs and a
fixed per-image charge by detail level (OpenAI's 85 + 170 per 512-px tile).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tiktoken
import tiktoken.model

# English averages about four characters per token with the GPT and Claude tokenizers; an
# estimate is all a budget check before the call needs, the provider reports the real count.
CHARS_PER_TOKEN = 4

DATA_DIR = Path(__file__).resolve().parent / "tokenizer_data"

# The sha256 of each file as tiktoken's own loader expects it (tiktoken_ext/openai_public.py),
# so a corrupted or substituted file is refused instead of silently miscounting.
_ENCODING_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
# Split patterns and special tokens as tiktoken_ext/openai_public.py defines them (tiktoken
# builds them inside the functions that would download the files, so they are restated here).
_PATTERNS = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$"""
        r"""|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}
_SPECIAL_TOKENS = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}

# What every chat message adds around its content (role and separators), as OpenAI's cookbook
# counts it for its chat models; and the reply primer of the request.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3

# Images, as OpenAI documents for its vision models: "low" detail is a flat 85 tokens; "high"
# scales the image to fit 2048x2048, then its short side to 768, and charges 85 + 170 per
# 512-px tile. An image of unknown size counts as a 1024x1024 one at high detail (4 tiles).
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
DEFAULT_IMAGE_SIZE = (1024, 1024)

OPENAI_KINDS = frozenset({"openai"})


def estimate_tokens(text: str) -> int:
    """ceil(characters / 4); 0 for empty text. The fallback for models without a shipped tokenizer."""
    return math.ceil(len(text or "") / CHARS_PER_TOKEN)


@functools.cache
def load_encoding(name: str) -> tiktoken.Encoding:
    """The named encoding from the shipped file, built once per process (about 0.3 s)."""
    data = (DATA_DIR / f"{name}.tiktoken").read_bytes()
    if hashlib.sha256(data).hexdigest() != _ENCODING_SHA256[name]:
        raise ValueError(f"tokenizer_data/{name}.tiktoken does not match tiktoken's expected sha256")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}
    return tiktoken.Encoding(name, pat_str=_PATTERNS[name], mergeable_ranks=ranks, special_tokens=_SPECIAL_TOKENS[name])


@functools.lru_cache(maxsize=512)
def encoding_name_for(model_id: str, provider_kind: str = "") -> str | None:
    """o200k_base / cl100k_base for models tiktoken knows (gpt-4o, gpt-4, o1, ...); o200k_base for
    any other model of an OpenAI provider; None (characters / 4) for everything else."""
    bare = (model_id or "").rsplit("/", 1)[-1]
    try:
        name = tiktoken.model.encoding_name_for_model(bare)
    except KeyError:
        name = "o200k_base" if provider_kind in OPENAI_KINDS else None
    return name if name in _ENCODING_SHA256 else None


class TokenCounter:
    """Counts text for one model: its tiktoken encoding when it has one, characters / 4 otherwise."""

    def __init__(self, model_id: str = "", provider_kind: str = ""):
        self.encoding_name = encoding_name_for(model_id, provider_kind)
        self._encoding = load_encoding(self.encoding_name) if self.encoding_name else None

    @property
    def method(self) -> str:
        return self.encoding_name or "chars/4"

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._encoding is None:
            return estimate_tokens(text)
        return _tiktoken_count(self.encoding_name, text)


@functools.lru_cache(maxsize=2048)
def _tiktoken_count(encoding_name: str, text: str) -> int:
    """Cached: every step of a turn recounts the same system prompt and history, and the
    router's estimate and the first call's are of the same messages; only new text is encoded."""
    # Special-token text in a user message is counted as plain text, as the API treats it.
    return len(load_encoding(encoding_name).encode_ordinary(text))


def image_tokens(*, detail: str = "auto", width: int | None = None, height: int | None = None) -> int:
    """OpenAI's documented charge for one image: 85 at low detail, else 85 + 170 per 512-px tile."""
    if detail == "low":
        return IMAGE_BASE_TOKENS
    w, h = (width, height) if width and height else DEFAULT_IMAGE_SIZE
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles


def tool_specs_json(tools: Iterable[Any]) -> str:
    """The tool specs as the OpenAI-compatible client sends them, serialized."""
    specs = [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]
    return json.dumps(specs, separators=(",", ":")) if specs else ""


def _content_tokens(counter: TokenCounter, content: str | list[dict[str, Any]]) -> int:
    if isinstance(content, str):
        return counter.count(content)
    total = 0
    for part in content:
        if part.get("type") == "image":
            total += image_tokens(detail=part.get("detail", "auto"), width=part.get("width"), height=part.get("height"))
        else:
            total += counter.count(part.get("text", ""))
    return total


def estimate_input_tokens(
    messages: Sequence[Any], tools: Sequence[Any] = (), *, model_id: str = "", provider_kind: str = ""
) -> int:
    """The input side of one call: every message (text, images, the tool calls it carries), the
    per-message framing and the JSON of the tool specs."""
    counter = TokenCounter(model_id, provider_kind)
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + _content_tokens(counter, message.content)
        for call in getattr(message, "tool_calls", ()) or ():
            total += counter.count(call.name) + counter.count(call.raw_arguments or json.dumps(call.arguments))
    if tools:
        total += counter.count(tool_specs_json(tools))
    return total
