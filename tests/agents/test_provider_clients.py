"""The OpenAI-compatible and Anthropic clients, through the real SDKs, against the stub server."""

from __future__ import annotations

import pytest

from apps.agents.models import ProviderKind
from apps.agents.providers.base import (
    ChatMessage,
    ProviderRequestError,
    ProviderUnavailable,
    ToolCallRequest,
    ToolSpec,
)
from apps.agents.providers.registry import client_for
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_providers")]

BOTH = pytest.mark.parametrize("kind", [ProviderKind.OPENAI, ProviderKind.ANTHROPIC])
CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)
CLOCK = ToolSpec(name="current_time", description="The current time.", parameters={"type": "object", "properties": {}})


def chat(client, messages, *, tools=(), max_output_tokens=None, on_text=None):
    deltas: list[str] = []
    result = client.chat(
        model="stub-small",
        messages=messages,
        tools=list(tools),
        temperature=None,
        max_output_tokens=max_output_tokens,
        on_text=on_text or deltas.append,
    )
    return result, deltas


def ask(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content=text)]


@BOTH
def test_plain_answer(tenant, make_provider, model_server, kind):
    model_server.script([Reply(text="Hello there, friend.", usage=(12, 5))])
    result, _ = chat(client_for(make_provider(tenant, kind=kind)), ask("hi"))
    assert result.text == "Hello there, friend."
    assert result.tool_calls == []
    assert result.finish_reason == "stop"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 5)
    assert result.provider_kind == kind
    assert result.model == "stub-small"
    assert result.offline is False


@BOTH
def test_streamed_answer_reaches_on_text_in_order(tenant, make_provider, model_server, kind):
    chunks = ["The ", "answer ", "is ", "forty", "-two."]
    model_server.script([Reply(chunks=chunks, text="".join(chunks))])
    result, deltas = chat(client_for(make_provider(tenant, kind=kind)), ask("?"))
    assert deltas == chunks
    assert result.text == "The answer is forty-two."


@BOTH
def test_one_tool_call(tenant, make_provider, model_server, kind):
    model_server.script([Reply(tool_calls=[("calculator", {"expression": "1+1"})])])
    result, deltas = chat(client_for(make_provider(tenant, kind=kind)), ask("1+1?"), tools=[CALCULATOR])
    assert deltas == []
    assert result.finish_reason == "tool_calls"
    [call] = result.tool_calls
    assert (call.name, call.arguments) == ("calculator", {"expression": "1+1"})
    assert call.id
    sent = model_server.requests[0]
    if kind == ProviderKind.ANTHROPIC:
        assert sent["tools"] == [
            {"name": "calculator", "description": CALCULATOR.description, "input_schema": CALCULATOR.parameters}
        ]
    else:
        assert sent["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "calculator",
                    "description": CALCULATOR.description,
                    "parameters": CALCULATOR.parameters,
                },
            }
        ]


@BOTH
def test_several_tool_calls_after_some_text(tenant, make_provider, model_server, kind):
    model_server.script(
        [
            Reply(
                text="Let me check.",
                tool_calls=[("current_time", {}), ("calculator", {"expression": "6*7"}), ("current_time", {})],
            )
        ]
    )
    result, deltas = chat(client_for(make_provider(tenant, kind=kind)), ask("time and 6*7"), tools=[CALCULATOR, CLOCK])
    assert "".join(deltas) == "Let me check."
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("current_time", {}),
        ("calculator", {"expression": "6*7"}),
        ("current_time", {}),
    ]
    assert len({c.id for c in result.tool_calls}) == 3
    assert result.finish_reason == "tool_calls"


@BOTH
def test_invalid_tool_json_becomes_empty_arguments_with_the_raw_text_kept(tenant, make_provider, model_server, kind):
    model_server.script([Reply(tool_calls=[("calculator", '{"expression": "1+')])])
    result, _ = chat(client_for(make_provider(tenant, kind=kind)), ask("x"), tools=[CALCULATOR])
    [call] = result.tool_calls
    assert call.arguments == {}
    assert call.raw_arguments == '{"expression": "1+'


@BOTH
@pytest.mark.parametrize(
    ("status", "error"),
    [(500, ProviderUnavailable), (503, ProviderUnavailable), (429, ProviderUnavailable), (400, ProviderRequestError),
     (401, ProviderRequestError), (404, ProviderRequestError)],
)  # fmt: skip
def test_http_errors_map_to_unavailable_or_request_error(tenant, make_provider, model_server, kind, status, error):
    model_server.script([Reply(status=status, error="nope")])
    with pytest.raises(error) as raised:
        chat(client_for(make_provider(tenant, kind=kind)), ask("hi"))
    assert str(status) in str(raised.value)
    assert "nope" in str(raised.value)


@BOTH
def test_timeout_is_unavailable(tenant, make_provider, model_server, kind, settings):
    settings.PROVIDER_TIMEOUT_SECONDS = 0.5
    model_server.script([Reply(text="too late", delay=5.0)])
    with pytest.raises(ProviderUnavailable):
        chat(client_for(make_provider(tenant, kind=kind)), ask("hi"))


@BOTH
def test_stall_in_the_middle_of_a_stream_is_unavailable(tenant, make_provider, model_server, kind, settings):
    settings.PROVIDER_TIMEOUT_SECONDS = 0.5
    model_server.script([Reply(text="one two three", chunk_delay=3.0)])
    with pytest.raises(ProviderUnavailable):
        chat(client_for(make_provider(tenant, kind=kind)), ask("hi"))


def test_sdk_retries_follow_settings(tenant, make_provider, model_server, settings):
    settings.PROVIDER_MAX_RETRIES = 1
    model_server.script([Reply(status=500), Reply(text="second time lucky")])
    result, _ = chat(client_for(make_provider(tenant)), ask("hi"))
    assert result.text == "second time lucky"
    assert len(model_server.requests) == 2


def test_connection_refused_is_unavailable(tenant, make_provider, model_server):
    provider = make_provider(tenant)
    model_server.stop()
    with pytest.raises(ProviderUnavailable):
        chat(client_for(provider), ask("hi"))


@BOTH
def test_an_exception_from_on_text_propagates_and_stops_the_stream(tenant, make_provider, model_server, kind):
    class CancelledError(Exception):
        pass

    def cancel(_delta: str) -> None:
        raise CancelledError

    model_server.script([Reply(text="a b c d e")])
    with pytest.raises(CancelledError):
        chat(client_for(make_provider(tenant, kind=kind)), ask("hi"), on_text=cancel)


def _conversation_with_tool_round() -> list[ChatMessage]:
    call = ToolCallRequest(id="call_1", name="calculator", arguments={"expression": "2+2"}, raw_arguments="")
    return [
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content="what is 2+2?"),
        ChatMessage(role="assistant", content="", tool_calls=(call,)),
        ChatMessage(role="tool", content="4", tool_call_id="call_1", name="calculator"),
    ]


def test_openai_wire_messages(tenant, make_provider, model_server):
    chat(client_for(make_provider(tenant)), _conversation_with_tool_round(), tools=[CALCULATOR], max_output_tokens=50)
    sent = model_server.requests[0]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["max_completion_tokens"] == 50
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "what is 2+2?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "2+2"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "4"},
    ]


def test_ollama_and_compatible_servers_get_max_tokens(tenant, make_provider, model_server):
    provider = make_provider(tenant, kind=ProviderKind.OLLAMA, api_key="")
    chat(client_for(provider), ask("hi"), max_output_tokens=64)
    assert model_server.requests[0]["max_tokens"] == 64
    assert "max_completion_tokens" not in model_server.requests[0]


def test_anthropic_wire_messages(tenant, make_provider, model_server):
    provider = make_provider(tenant, kind=ProviderKind.ANTHROPIC)
    chat(client_for(provider), _conversation_with_tool_round(), tools=[CALCULATOR])
    sent = model_server.requests[0]
    assert sent["system"] == "You are terse."
    assert sent["max_tokens"] == 4096  # mandatory in the Messages API; our default ceiling
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "what is 2+2?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "call_1", "name": "calculator", "input": {"expression": "2+2"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "4"}]},
    ]


def _with_images() -> list[ChatMessage]:
    return [
        ChatMessage(
            role="user",
            content=[
                {"type": "text", "text": "What is in these?"},
                {"type": "image", "url": "data:image/png;base64,iVBORw0KGgo=", "mime_type": "image/png"},
                {"type": "image", "url": "https://example.com/cat.jpg", "mime_type": "image/jpeg"},
            ],
        )
    ]


def test_openai_images_become_image_url_parts(tenant, make_provider, model_server):
    chat(client_for(make_provider(tenant)), _with_images())
    assert model_server.requests[0]["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]


def test_anthropic_images_become_base64_and_url_sources(tenant, make_provider, model_server):
    chat(client_for(make_provider(tenant, kind=ProviderKind.ANTHROPIC)), _with_images())
    assert model_server.requests[0]["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@BOTH
def test_the_decrypted_key_is_what_the_sdk_sends(tenant, make_provider, model_server, kind):
    chat(client_for(make_provider(tenant, kind=kind, api_key="sk-live-abcdef123456")), ask("hi"))
    headers = model_server.log[0].headers
    # The SDKs choose the header (Anthropic's has used both x-api-key and a Bearer token).
    assert "sk-live-abcdef123456" in (
        headers.get("x-api-key", ""),
        headers.get("authorization", "").removeprefix("Bearer "),
    )


def test_a_provider_without_a_key_never_borrows_the_environment_key(tenant, make_provider, model_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-platform-secret")
    chat(client_for(make_provider(tenant, api_key="")), ask("hi"))
    assert "sk-platform-secret" not in model_server.log[0].headers["authorization"]


@BOTH
def test_list_models_and_probe(tenant, make_provider, model_server, kind):
    client = client_for(make_provider(tenant, kind=kind))
    assert [m.id for m in client.list_models()] == ["stub-small", "stub-large"]
    probe = client.probe()
    assert probe.reachable is True
    assert probe.models_seen == 2
    assert probe.latency_ms >= 0


@BOTH
def test_probe_reports_failure_without_raising(tenant, make_provider, model_server, kind):
    client = client_for(make_provider(tenant, kind=kind))
    model_server.script([Reply(status=401, error="bad key")])
    probe = client.probe()
    assert probe.reachable is False
    assert "bad key" in probe.error
