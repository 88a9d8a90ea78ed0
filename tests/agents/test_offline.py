"""The built-in offline provider: deterministic answers and tool calls with no network."""

from __future__ import annotations

import pytest

from apps.agents.providers.base import ChatMessage, ToolCallRequest, ToolSpec
from apps.agents.providers.offline import find_expression
from apps.agents.providers.registry import offline_client

TOOLS = [
    ToolSpec(name="current_time", description="Now.", parameters={"type": "object", "properties": {}}),
    ToolSpec(name="calculator", description="Arithmetic.", parameters={"type": "object", "properties": {}}),
]


def chat(messages, tools=TOOLS):
    deltas: list[str] = []
    result = offline_client().chat(
        model="offline-small",
        messages=messages,
        tools=tools,
        temperature=None,
        max_output_tokens=None,
        on_text=deltas.append,
    )
    return result, deltas


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="system", content="You help."), ChatMessage(role="user", content=text)]


@pytest.mark.parametrize("text", ["What time is it?", "what's the date today", "What day is it", "check the clock"])
def test_asking_for_the_time_calls_current_time(text):
    result, deltas = chat(user(text))
    assert deltas == []
    assert result.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [("call_offline_1", "current_time", {})]
    assert result.offline is True
    assert result.provider_kind == "offline"


@pytest.mark.parametrize(
    ("text", "expression"),
    [("what is 2+3*4", "2+3*4"), ("what is 12*(3+4)?", "12*(3+4)"), ("compute 2 ^ 10 please", "2^10")],
)
def test_arithmetic_calls_the_calculator(text, expression):
    result, _ = chat(user(text))
    [call] = result.tool_calls
    assert (call.name, call.arguments) == ("calculator", {"expression": expression})


def test_tools_that_are_not_offered_are_not_called():
    result, _ = chat(user("what is 2+3*4"), tools=[])
    assert result.tool_calls == []
    assert result.text.startswith("(offline model) I received: what is 2+3*4.")


def test_a_tool_result_is_summarised_and_streamed_word_by_word():
    call = ToolCallRequest(id="call_offline_1", name="current_time", arguments={})
    messages = [
        *user("What time is it?"),
        ChatMessage(role="assistant", tool_calls=(call,)),
        ChatMessage(role="tool", content="2026-01-01T12:00:00Z", tool_call_id="call_offline_1", name="current_time"),
    ]
    result, deltas = chat(messages)
    assert result.text == "(offline model) current_time returned: 2026-01-01T12:00:00Z"
    assert result.tool_calls == []
    assert result.finish_reason == "stop"
    assert len(deltas) > 1
    assert "".join(deltas) == result.text


def test_tool_call_ids_count_the_calls_already_made():
    earlier = ToolCallRequest(id="call_offline_1", name="calculator", arguments={"expression": "1+1"})
    messages = [
        *user("what is 1+1"),
        ChatMessage(role="assistant", tool_calls=(earlier,)),
        ChatMessage(role="tool", content="2", tool_call_id="call_offline_1", name="calculator"),
        ChatMessage(role="assistant", content="(offline model) calculator returned: 2"),
        ChatMessage(role="user", content="and what time is it?"),
    ]
    result, _ = chat(messages)
    assert result.tool_calls[0].id == "call_offline_2"


def test_plain_text_gets_a_labeled_deterministic_answer():
    first, deltas = chat(user("Tell me a story about a fox."))
    second, _ = chat(user("Tell me a story about a fox."))
    assert first == second
    assert first.text == (
        "(offline model) I received: Tell me a story about a fox.. Configure a provider "
        "(OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST) for real answers."
    )
    assert "".join(deltas) == first.text
    assert first.usage.output_tokens == -(-len(first.text) // 4)
    assert first.usage.input_tokens == -(-len("You help.Tell me a story about a fox.") // 4)


def test_long_messages_are_echoed_up_to_200_characters():
    result, _ = chat(user("x" * 500))
    assert "x" * 200 + "." in result.text
    assert "x" * 201 not in result.text


def test_images_are_acknowledged_not_seen():
    message = ChatMessage(
        role="user",
        content=[{"type": "text", "text": "What is this?"}, {"type": "image", "url": "https://example.com/a.png"}],
    )
    result, _ = chat([message])
    assert "cannot see images (1 attached)" in result.text


def test_models_and_probe_need_no_network():
    client = offline_client()
    assert [m.id for m in client.list_models()] == ["offline-small"]
    assert client.probe().reachable is True


@pytest.mark.parametrize("text", ["hello", "I have 3 apples", "version 2", ""])
def test_no_expression_in_ordinary_text(text):
    assert find_expression(text) == ""


REMEMBER = ToolSpec(name="remember", description="Save a fact.", parameters={"type": "object", "properties": {}})


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("Remember that my favourite colour is teal.", "my favourite colour is teal."),
        ("please remember: the launch is on Friday", "the launch is on Friday"),
    ],
)
def test_remember_that_calls_the_remember_tool(text, fact):
    result, _ = chat(user(text), tools=[*TOOLS, REMEMBER])
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("remember", {"fact": fact})]


def test_remember_is_not_called_when_not_offered_or_not_asked():
    assert chat(user("Remember that I like tea"))[0].tool_calls == []
    assert chat(user("I remember the old office"), tools=[*TOOLS, REMEMBER])[0].tool_calls == []


def test_memories_recalled_into_the_system_prompt_are_shown_in_the_answer():
    from apps.memory.text import CONTEXT_HEADER

    system = f"You help.\n\n{CONTEXT_HEADER}\n- my favourite colour is teal\n- the launch is on Friday"
    messages = [ChatMessage(role="system", content=system), ChatMessage(role="user", content="What colour do I like?")]
    result, _ = chat(messages)
    assert result.text.endswith("I remember: my favourite colour is teal | the launch is on Friday")
    assert "I remember" not in chat(user("What colour do I like?"))[0].text
