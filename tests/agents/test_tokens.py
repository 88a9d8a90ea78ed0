"""Token estimates: tiktoken from the shipped encoding files for OpenAI-family models,
characters / 4 for the others, with tool schemas and images counted on both paths."""

from __future__ import annotations

import hashlib

import pytest

from apps.agents import tokens
from apps.agents.providers.base import ChatMessage, ToolCallRequest, ToolSpec

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression and return the result.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)


@pytest.mark.parametrize(
    ("encoding", "text", "ids"),
    [
        # Reference ids from tiktoken's own test suite (tests/test_encoding.py)
        ("cl100k_base", "hello world", [15339, 1917]),
        ("o200k_base", "hello world", [24912, 2375]),
    ],
)
def test_shipped_encodings_give_tiktokens_known_ids(encoding, text, ids):
    assert tokens.load_encoding(encoding).encode(text) == ids


def test_shipped_files_match_the_hashes_tiktoken_expects():
    for name, expected in tokens._ENCODING_SHA256.items():
        data = (tokens.DATA_DIR / f"{name}.tiktoken").read_bytes()
        assert hashlib.sha256(data).hexdigest() == expected


@pytest.mark.parametrize(
    ("model_id", "kind", "encoding"),
    [
        ("gpt-4o", "openai", "o200k_base"),
        ("gpt-4o-mini", "openai_compatible", "o200k_base"),
        ("gpt-4", "openai", "cl100k_base"),
        ("gpt-3.5-turbo", "openai", "cl100k_base"),
        ("openai/gpt-4.1", "openai_compatible", "o200k_base"),
        ("some-new-model", "openai", "o200k_base"),
        ("claude-sonnet-4", "anthropic", None),
        ("llama3.2", "ollama", None),
    ],
)
def test_models_map_to_their_encoding_or_to_the_fallback(model_id, kind, encoding):
    assert tokens.encoding_name_for(model_id, kind) == encoding


def test_openai_models_are_counted_with_tiktoken_others_by_characters():
    text = "The quick brown fox jumps over the lazy dog."  # nine words and the dot; 44 characters
    assert tokens.TokenCounter("gpt-4o", "openai").count(text) == 10
    assert tokens.TokenCounter("gpt-4", "openai").count(text) == 10
    assert tokens.TokenCounter("claude-3", "anthropic").count(text) == 11  # ceil(44 / 4)


@pytest.mark.parametrize(("model_id", "kind"), [("gpt-4o", "openai"), ("claude-3", "anthropic")])
def test_tool_schemas_increase_the_input_estimate(model_id, kind):
    messages = [ChatMessage(role="user", content="what is 2+2?")]
    without = tokens.estimate_input_tokens(messages, model_id=model_id, provider_kind=kind)
    with_tool = tokens.estimate_input_tokens(messages, [CALCULATOR], model_id=model_id, provider_kind=kind)
    counter = tokens.TokenCounter(model_id, kind)
    assert with_tool - without == counter.count(tokens.tool_specs_json([CALCULATOR]))
    assert with_tool - without > 20


@pytest.mark.parametrize(("model_id", "kind"), [("gpt-4o", "openai"), ("claude-3", "anthropic")])
def test_images_increase_the_input_estimate_by_detail(model_id, kind):
    def estimate(*parts):
        content = [{"type": "text", "text": "what is this?"}, *parts]
        return tokens.estimate_input_tokens(
            [ChatMessage(role="user", content=content)], model_id=model_id, provider_kind=kind
        )

    text_only = estimate()
    assert estimate({"type": "image", "url": "https://x/a.png", "detail": "low"}) - text_only == 85
    # Unknown size: a 1024x1024 image at high detail, 768x768 after scaling, 4 tiles
    assert estimate({"type": "image", "url": "https://x/a.png"}) - text_only == 85 + 4 * 170


def test_image_tokens_follow_openais_tiling():
    assert tokens.image_tokens(detail="low", width=4096, height=4096) == 85
    assert tokens.image_tokens(detail="high", width=512, height=512) == 85 + 170  # one tile
    # 2048x4096 fits 1024x2048, short side to 768: 768x1536, 2x3 tiles (OpenAI's worked example)
    assert tokens.image_tokens(detail="high", width=2048, height=4096) == 85 + 6 * 170


def test_tool_calls_and_framing_count():
    call = ToolCallRequest(id="c1", name="calculator", arguments={"expression": "2+2"})
    plain = [ChatMessage(role="assistant", content="")]
    with_call = [ChatMessage(role="assistant", content="", tool_calls=(call,))]
    assert tokens.estimate_input_tokens(plain, model_id="gpt-4o") == tokens.TOKENS_PER_REPLY + tokens.TOKENS_PER_MESSAGE
    assert tokens.estimate_input_tokens(with_call, model_id="gpt-4o") > tokens.estimate_input_tokens(
        plain, model_id="gpt-4o"
    )


def test_characters_over_four_stays_the_fallback():
    assert tokens.estimate_tokens("") == 0
    assert tokens.estimate_tokens("abcde") == 2
