"""The turn engine against the real openai and anthropic SDKs talking to the stub model server."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations import cancellation, services
from apps.conversations.models import ToolCall, Turn
from apps.events.models import Event
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_providers")]

TOOLS = ["calculator", "current_time", "http_get"]


@pytest.fixture
def openai_agent(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    return Agent.objects.create(
        tenant=tenant, name="oai-agent", system_prompt="Be brief.", guide_model=model, enabled_tools=TOOLS
    )


@pytest.fixture
def anthropic_agent(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.ANTHROPIC, name="claude", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    return Agent.objects.create(tenant=tenant, name="claude-agent", guide_model=model, enabled_tools=TOOLS)


def run_turn(tenant, agent, text="hello", parts=None, capture=None) -> Turn:
    session = services.session_create(tenant=tenant, agent=agent)
    with capture(execute=True):
        _, turn = services.message_post(
            tenant=tenant, session=session, role="user", parts=parts or [{"type": "text", "text": text}]
        )
    turn.refresh_from_db()
    return turn


@pytest.fixture
def turn_of(tenant, django_capture_on_commit_callbacks):
    def run(agent, text="hello", parts=None) -> Turn:
        return run_turn(tenant, agent, text, parts, capture=django_capture_on_commit_callbacks)

    return run


def events(turn, kind=None):
    found = Event.objects.filter(turn_id=turn.pk).order_by("id")
    return [e for e in found if kind is None or e.type == kind]


@pytest.mark.parametrize("agent_fixture", ["openai_agent", "anthropic_agent"])
def test_streamed_answer_arrives_in_order(request, agent_fixture, turn_of, model_server):
    agent = request.getfixturevalue(agent_fixture)
    model_server.script([Reply(text="The quick brown fox jumps over the lazy dog")])
    turn = turn_of(agent, "tell me something")
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert turn.output_message.text == "The quick brown fox jumps over the lazy dog"
    streamed = "".join(e.data["delta"] for e in events(turn, "chat_token"))
    assert streamed == turn.output_message.text
    assert turn.usage["input_tokens"] > 0
    assert turn.output_message.metadata["offline"] is False
    sent = model_server.requests[0]
    assert sent["stream"] is True
    assert {t.get("name") or t["function"]["name"] for t in sent["tools"]} == set(TOOLS)


@pytest.mark.parametrize("agent_fixture", ["openai_agent", "anthropic_agent"])
def test_several_tool_calls_in_one_step_then_an_answer(request, agent_fixture, turn_of, model_server):
    agent = request.getfixturevalue(agent_fixture)
    model_server.script(
        [
            Reply(tool_calls=[("calculator", {"expression": "6*7"}), ("current_time", {"timezone": "UTC"})]),
            Reply(text="42, and it is late."),
        ]
    )
    turn = turn_of(agent, "compute and tell the time")
    assert turn.status == Turn.Status.COMPLETED, turn.error
    calls = list(ToolCall.objects.filter(turn=turn).order_by("created_at"))
    assert [c.name for c in calls] == ["calculator", "current_time"]
    assert all(c.status == ToolCall.Status.COMPLETED for c in calls)
    assert "42" in calls[0].result
    assert turn.step_count == 2
    assert turn.tool_call_count == 2
    second_request = str(model_server.requests[1])
    assert "42" in second_request  # the tool result went back to the model


def test_a_failing_tool_is_reported_to_the_model_and_the_turn_goes_on(openai_agent, turn_of, model_server):
    model_server.script([Reply(tool_calls=[("calculator", {"expression": "1/0"})]), Reply(text="Cannot divide.")])
    turn = turn_of(openai_agent, "what is 1/0")
    assert turn.status == Turn.Status.COMPLETED
    call = ToolCall.objects.get(turn=turn)
    assert call.status == ToolCall.Status.FAILED
    assert call.result.startswith("Error:")
    assert "Error:" in str(model_server.requests[1]["messages"])


def test_ssrf_attempt_through_http_get_is_refused(openai_agent, turn_of, model_server):
    model_server.script(
        [
            Reply(tool_calls=[("http_get", {"url": "http://169.254.169.254/latest/meta-data/"})]),
            Reply(text="That address is not allowed."),
        ]
    )
    turn = turn_of(openai_agent, "fetch the metadata")
    call = ToolCall.objects.get(turn=turn)
    assert call.status == ToolCall.Status.FAILED
    assert "169.254.169.254" in call.error or "not allowed" in call.error.lower() or "blocked" in call.error.lower()


def test_max_steps_stops_a_model_that_only_calls_tools(openai_agent, turn_of, model_server):
    openai_agent.max_steps = 3
    openai_agent.save()
    model_server.default_reply = Reply(tool_calls=[("current_time", {})])
    turn = turn_of(openai_agent, "loop forever")
    assert turn.status == Turn.Status.COMPLETED
    assert turn.step_count == 3
    assert turn.tool_call_count == 3
    assert turn.output_message.metadata["stop_reason"] == "max_steps"
    assert "Stopped after 3 steps" in turn.output_message.text


def test_provider_errors_fall_back_and_then_the_breaker_skips_the_broken_provider(
    tenant, make_provider, turn_of, model_server, settings
):
    settings.BREAKER_FAILURE_THRESHOLD = 2
    settings.BREAKER_RESET_SECONDS = 60
    broken = make_provider(tenant, kind=ProviderKind.OPENAI, name="broken", models=["stub-small"])
    make_provider(tenant, kind=ProviderKind.ANTHROPIC, name="backup", models=["stub-small"])
    agent = Agent.objects.create(
        tenant=tenant,
        name="resilient",
        guide_model=CatalogModel.objects.get(provider=broken),
        model_policy={"preferred_models": ["backup/stub-small"]},
    )
    settings.PROVIDER_TIMEOUT_SECONDS = 1.0
    model_server.script([Reply(status=500), Reply(text="from backup"), Reply(delay=3), Reply(text="again")])
    first = turn_of(agent, "one")
    second = turn_of(agent, "two")  # a timeout this time
    for turn in (first, second):
        assert turn.status == Turn.Status.COMPLETED, turn.error
        assert turn.model == "backup/stub-small"
        fallback = [e.data for e in events(turn, "decision") if e.data.get("fallback")]
        assert fallback[0]["from"] == "broken/stub-small"
        assert fallback[0]["to"] == "backup/stub-small"

    requests_before = len(model_server.requests)
    model_server.script([Reply(text="straight to backup")])
    third = turn_of(agent, "three")
    assert third.output_message.text == "straight to backup"
    assert len(model_server.requests) == requests_before + 1  # the open breaker did not call `broken`
    assert "circuit" in str(events(third, "decision")[1].data).lower() or "open" in str(
        events(third, "decision")[1].data
    )


def test_every_model_down_fails_the_turn_with_the_reasons(openai_agent, turn_of, model_server):
    model_server.script([Reply(status=503)])
    turn = turn_of(openai_agent, "hi")
    assert turn.status == Turn.Status.FAILED
    assert turn.error.startswith("No model could answer: oai/stub-small")
    assert events(turn)[-1].type == "turn_failed"


def test_cost_over_the_agents_limit_is_refused_before_calling(openai_agent, turn_of, model_server):
    CatalogModel.objects.filter(pk=openai_agent.guide_model_id).update(
        input_per_mtok=Decimal("1000"), output_per_mtok=Decimal("1000")
    )
    openai_agent.model_policy = {"max_cost_usd": 0.0001}
    openai_agent.save()
    turn = turn_of(openai_agent, "an expensive question " * 20)
    assert turn.status == Turn.Status.FAILED
    assert "max_cost_usd" in turn.error
    assert model_server.requests == []


def test_images_route_to_the_vision_model(tenant, make_provider, turn_of, model_server):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small", "stub-vision"])
    CatalogModel.objects.filter(provider=provider, model_id="stub-vision").update(supports_vision=True)
    agent = Agent.objects.create(
        tenant=tenant,
        name="eyes",
        guide_model=CatalogModel.objects.get(provider=provider, model_id="stub-small"),
        vision_model=CatalogModel.objects.get(provider=provider, model_id="stub-vision"),
    )
    model_server.script([Reply(text="a cat")])
    turn = turn_of(
        agent,
        parts=[
            {"type": "text", "text": "what is this?"},
            {"type": "image", "url": "https://example.com/cat.png", "mime_type": "image/png"},
        ],
    )
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert turn.model_selection["chosen"] == "oai/stub-vision"
    assert model_server.requests[0]["model"] == "stub-vision"
    assert "image_url" in str(model_server.requests[0]["messages"])


def test_cancel_mid_stream_keeps_the_partial_answer(
    openai_agent, tenant, model_server, settings, django_capture_on_commit_callbacks
):
    words = [f"word{i} " for i in range(200)]
    model_server.script([Reply(chunks=words, chunk_delay=0.02)])
    session = services.session_create(tenant=tenant, agent=openai_agent)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _, turn = services.message_post(
            tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": "talk"}]
        )
    timer = threading.Timer(0.5, cancellation.request, args=[turn.pk])
    started = time.monotonic()
    timer.start()
    for callback in callbacks:
        callback()
    elapsed = time.monotonic() - started
    turn.refresh_from_db()
    assert turn.status == Turn.Status.CANCELLED
    assert elapsed < 2.5  # the whole stream would take 4 s
    partial = turn.output_message.text
    assert partial.startswith("word0 word1")
    assert len(partial.split()) < 200
    assert events(turn)[-1].type == "turn_cancelled"
    assert events(turn)[-1].data["partial_text"] == partial
