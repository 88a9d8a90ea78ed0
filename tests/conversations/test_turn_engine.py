"""The turn engine on the offline model: the whole loop, tools included, with no network."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Message, ToolCall, Turn
from apps.conversations.turns import services as engine
from apps.events.models import Event
from tests.factories import turn_for_message

pytestmark = pytest.mark.django_db


def event_types(turn) -> list[str]:
    return list(Event.objects.filter(turn_id=turn.pk).order_by("id").values_list("type", flat=True))


def test_what_time_is_it_completes_with_a_tool_call_and_an_answer(chat):
    turn = chat("what time is it?")
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    call = ToolCall.objects.get(turn=turn)
    assert (call.name, call.status) == ("current_time", ToolCall.Status.COMPLETED)
    assert "utc" in call.result
    assert turn.step_count == 2
    assert turn.tool_call_count == 1
    assert turn.output_message.metadata["offline"] is True
    assert "current_time" in turn.output_message.text
    assert turn.usage["input_tokens"] > 0
    assert turn.usage["output_tokens"] > 0
    assert turn.finished_at
    assert turn.duration_ms is not None

    types = event_types(turn)
    assert types[0] == "turn_started"
    assert types[-1] == "chat_complete"
    assert (
        types.index("decision") < types.index("tool_call") < types.index("tool_result") < types.index("chat_complete")
    )
    assert "chat_token" in types
    complete = Event.objects.get(turn_id=turn.pk, type="chat_complete").data
    assert complete["text"] == turn.output_message.text
    assert complete["offline"] is True


def test_context_snapshot_and_model_selection_are_recorded(chat):
    turn = chat("hello there")
    turn.refresh_from_db()
    snapshot = turn.context_snapshot
    assert "helpful" in snapshot["system_prompt"].lower()
    assert {t["name"] for t in snapshot["tools"]} >= {"current_time", "calculator"}
    assert snapshot["input"] == [{"type": "text", "text": "hello there"}]
    assert turn.model_selection["chosen"] == turn.model == "offline/offline-small"
    assert {"candidates", "reason", "complexity_score"} <= set(turn.model_selection)


def test_history_window_carries_earlier_messages(chat):
    chat("my name is Ada")
    second = chat("what is my name?")
    second.refresh_from_db()
    history = second.context_snapshot["history"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["text"] == "my name is Ada"


def test_calculator_through_the_loop(chat):
    turn = chat("what is 12*(3+4)?")
    turn.refresh_from_db()
    assert ToolCall.objects.get(turn=turn).result.count("84") >= 1
    assert "84" in turn.output_message.text


def test_redelivery_runs_a_finished_turn_only_once(chat):
    turn = chat("what time is it?")
    before = Message.objects.filter(session_id=turn.session_id).count()
    assert engine.turn_execute(turn_id=str(turn.pk)).state == "skipped"
    assert engine.turn_execute(turn_id=str(turn.pk)).state == "skipped"
    assert Message.objects.filter(session_id=turn.session_id).count() == before
    assert Event.objects.filter(turn_id=turn.pk, type="chat_complete").count() == 1


def test_a_turn_held_by_a_live_worker_is_not_taken_over(agent, tenant):
    turn = turn_for_message(
        tenant=tenant,
        agent=agent,
        status=Turn.Status.RUNNING,
        attempt=1,
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )
    outcome = engine.turn_execute(turn_id=str(turn.pk))
    assert outcome.state == "busy"
    assert 0 < outcome.retry_in <= 31
    turn.refresh_from_db()
    assert turn.attempt == 1

    # The lease runs out: that worker died, so this one takes over and finishes.
    Turn.objects.filter(pk=turn.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert engine.turn_execute(turn_id=str(turn.pk)).state == "ran"
    turn.refresh_from_db()
    assert (turn.status, turn.attempt) == (Turn.Status.COMPLETED, 2)


def test_a_turn_that_keeps_killing_workers_fails_with_a_reason(agent, tenant, settings):
    turn = turn_for_message(
        tenant=tenant,
        agent=agent,
        status=Turn.Status.RUNNING,
        # Two workers died in it already; resumes after approvals do not count.
        attempt=settings.TURN_MAX_ATTEMPTS + 3,
        crash_count=settings.TURN_MAX_ATTEMPTS - 1,
        resume_count=3,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    engine.turn_execute(turn_id=str(turn.pk))
    turn.refresh_from_db()
    assert turn.status == Turn.Status.FAILED
    assert f"Gave up after {settings.TURN_MAX_ATTEMPTS} attempts" in turn.error
    assert event_types(turn)[-1] == "turn_failed"


def test_stale_turns_are_found_for_recovery(agent, tenant):
    from apps.conversations import services

    session = services.session_create(tenant=tenant, agent=agent)
    message = Message.objects.create(tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": "x"}])
    lost = Turn.objects.create(tenant=tenant, session=session, agent=agent, input_message=message)
    Turn.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    dead = Turn.objects.create(
        tenant=tenant,
        session=session,
        agent=agent,
        input_message=message,
        status=Turn.Status.RUNNING,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    fresh = Turn.objects.create(tenant=tenant, session=session, agent=agent, input_message=message)
    found = set(services.turn_ids_needing_recovery())
    assert {lost.pk, dead.pk} <= found
    assert fresh.pk not in found


def test_disabled_agent_fails_clearly(chat, agent, django_capture_on_commit_callbacks):
    turn = chat("hi")
    agent.enabled = False
    agent.save()
    from apps.conversations import services

    with django_capture_on_commit_callbacks(execute=True):
        retried = services.turn_retry(tenant=agent.tenant, turn=turn)
    retried.refresh_from_db()
    assert retried.status == Turn.Status.FAILED
    assert "disabled" in retried.error


def test_policy_deny_is_told_to_the_model(chat, tenant):
    from apps.policy.services import tool_rule_set
    from apps.tenancy.principal import Actor

    tool_rule_set(tenant=tenant, actor=Actor.system(), tool_name="current_time", action="deny")
    turn = chat("what time is it?")
    turn.refresh_from_db()
    call = ToolCall.objects.get(turn=turn)
    assert call.status == ToolCall.Status.DENIED
    assert call.policy["action"] == "deny"
    assert turn.status == Turn.Status.COMPLETED
    assert "Denied by policy" in turn.output_message.text


def test_require_approval_parks_the_turn(chat, tenant):
    from apps.policy.services import tool_rule_set
    from apps.tenancy.principal import Actor

    tool_rule_set(tenant=tenant, actor=Actor.system(), tool_name="current_time", action="require_approval")
    turn = chat("what time is it?")
    turn.refresh_from_db()
    assert turn.status == Turn.Status.WAITING_APPROVAL
    assert ToolCall.objects.get(turn=turn).status == ToolCall.Status.WAITING_APPROVAL
    assert event_types(turn)[-1] == "approval_request"
    assert turn.finished_at is None


def test_secrets_are_redacted_before_storage_and_the_model(chat):
    secret = "AKIAIOSFODNN7EXAMPLE"
    turn = chat(f"my aws key is {secret} please keep it")
    turn.refresh_from_db()
    assert secret not in turn.input_message.text
    assert "[REDACTED" in turn.input_message.text
    assert turn.metadata["redacted"] is True
    assert turn.input_message.metadata["redactions"]
    assert secret not in str(turn.context_snapshot)
