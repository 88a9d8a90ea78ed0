"""Tool policy, safe mode, and the approval workflow of gated tool calls."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.utils import timezone

from apps.conversations.models import ToolCall, Turn
from apps.conversations.turns import services as engine
from apps.events.models import Event
from apps.policy import services
from apps.policy.models import Approval
from apps.tenancy.models import Role
from apps.tenancy.principal import Actor
from apps.tools.registry import builtin_registry

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


def decide(tenant, agent, tool_name):
    return services.policy_decide(tenant=tenant, agent=agent, tool=builtin_registry.get(tool_name), arguments={})


def test_the_policy_matrix(tenant, agent):
    assert decide(tenant, agent, "current_time").action == "allow"  # nothing set
    services.policy_set_default(tenant=tenant, actor=SYSTEM, action="deny")
    assert decide(tenant, agent, "current_time").action == "deny"
    services.tool_rule_set(tenant=tenant, actor=SYSTEM, tool_name="current_time", action="allow")
    assert decide(tenant, agent, "current_time").action == "allow"  # a tenant rule beats the default
    services.tool_rule_set(
        tenant=tenant, actor=SYSTEM, tool_name="current_time", action="require_approval", agent=agent
    )
    decision = decide(tenant, agent, "current_time")
    assert decision.action == "require_approval"  # the agent's rule beats the tenant's
    assert "agent assistant" in decision.reason
    assert decide(tenant, None, "current_time").action == "allow"
    services.policy_set_default(tenant=tenant, actor=SYSTEM, action="require_approval", agent=agent)
    assert decide(tenant, agent, "calculator").action == "require_approval"  # the agent's default
    assert decide(tenant, None, "calculator").action == "deny"  # the tenant's default


def test_safe_mode_blocks_write_and_external_tools_only(tenant, agent):
    services.safe_mode_enter(tenant=tenant, actor=SYSTEM, reason="incident 42")
    assert decide(tenant, agent, "http_get").action == "deny"
    assert "incident 42" in decide(tenant, agent, "http_get").reason
    assert decide(tenant, agent, "calculator").action == "allow"  # read-only
    services.safe_mode_exit(tenant=tenant, actor=SYSTEM)
    assert decide(tenant, agent, "http_get").action == "allow"


@pytest.fixture
def gated(tenant):
    services.tool_rule_set(tenant=tenant, actor=SYSTEM, tool_name="current_time", action="require_approval")


def parked_turn(chat) -> tuple[Turn, Approval]:
    turn = chat("what time is it?")
    turn.refresh_from_db()
    assert turn.status == Turn.Status.WAITING_APPROVAL
    return turn, Approval.objects.get(turn=turn)


@pytest.mark.usefixtures("gated")
def test_approve_resumes_and_runs_the_call_exactly_once(chat, owner_client, django_capture_on_commit_callbacks):
    turn, approval = parked_turn(chat)
    listed = owner_client.get("/api/approvals").json()["results"]
    assert [a["id"] for a in listed] == [str(approval.pk)]
    assert Event.objects.filter(turn_id=turn.pk, type="approval_request").get().data["approval_id"] == str(approval.pk)

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/api/approvals/{approval.pk}/approve", {"reason": "fine"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    call = ToolCall.objects.get(turn=turn)
    assert call.status == ToolCall.Status.COMPLETED
    assert "current_time returned" in turn.output_message.text

    # The task delivered again, and the approval decided again: nothing runs twice.
    assert engine.turn_execute(turn_id=str(turn.pk)).state == "skipped"
    again = owner_client.post(f"/api/approvals/{approval.pk}/approve", {}, format="json")
    assert again.status_code == 409
    assert Event.objects.filter(turn_id=turn.pk, type="tool_result").count() == 1
    assert Event.objects.filter(turn_id=turn.pk, type="approval_resolved").count() == 1


@pytest.mark.usefixtures("gated")
def test_redelivered_resume_runs_the_approved_call_once(chat, tenant, owner_client):
    turn, approval = parked_turn(chat)
    owner_client.post(f"/api/approvals/{approval.pk}/approve", {}, format="json")  # resume not run yet
    assert Turn.objects.get(pk=turn.pk).status == Turn.Status.QUEUED
    engine.turn_execute(turn_id=str(turn.pk))
    engine.turn_execute(turn_id=str(turn.pk))
    assert Event.objects.filter(turn_id=turn.pk, type="tool_result").count() == 1
    assert Turn.objects.get(pk=turn.pk).status == Turn.Status.COMPLETED


@pytest.mark.usefixtures("gated")
def test_deny_tells_the_model_and_the_turn_goes_on(chat, owner_client, django_capture_on_commit_callbacks):
    turn, approval = parked_turn(chat)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/api/approvals/{approval.pk}/deny", {"reason": "not now"}, format="json")
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED
    call = ToolCall.objects.get(turn=turn)
    assert call.status == ToolCall.Status.DENIED
    assert "not now" in call.result


@pytest.mark.usefixtures("gated")
def test_expiry_counts_as_deny(chat, django_capture_on_commit_callbacks):
    turn, approval = parked_turn(chat)
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.turn_approvals_expire() == 1
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED
    assert "expired" in ToolCall.objects.get(turn=turn).result


@pytest.mark.usefixtures("gated")
def test_tampered_arguments_are_refused(chat, owner_client, django_capture_on_commit_callbacks):
    turn, approval = parked_turn(chat)
    ToolCall.objects.filter(turn=turn).update(arguments={"timezone": "Europe/Paris"})
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/api/approvals/{approval.pk}/approve", {}, format="json")
    call = ToolCall.objects.get(turn=turn)
    assert call.status == ToolCall.Status.FAILED
    assert "differ from what was approved" in call.result


@pytest.mark.usefixtures("gated")
def test_who_may_decide_is_a_role_setting(chat, tenant, make_client):
    _, approval = parked_turn(chat)
    member = make_client(tenant, role=Role.MEMBER)
    assert member.post(f"/api/approvals/{approval.pk}/approve", {}, format="json").status_code == 403
    tenant.settings = {"approval_role": "member"}
    tenant.save()
    assert member.post(f"/api/approvals/{approval.pk}/approve", {}, format="json").status_code == 200


@pytest.mark.usefixtures("gated")
def test_the_session_form_decides_by_turn_and_call(chat, owner_client, django_capture_on_commit_callbacks):
    turn, approval = parked_turn(chat)
    body = {"tool_call_id": str(approval.tool_call_id), "action": "deny", "reason": "no"}
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/api/sessions/{turn.session_id}/approve", body, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "denied"
    assert owner_client.get(f"/api/audit/policy/{turn.pk}").json()["decisions"][0]["approval"]["status"] == "denied"


@pytest.mark.usefixtures("gated")
def test_cancelling_a_waiting_turn_closes_its_approval(chat, owner_client):
    turn, approval = parked_turn(chat)
    assert owner_client.post(f"/api/sessions/{turn.session_id}/cancel").json()["status"] == "cancelled"
    approval.refresh_from_db()
    assert approval.status == Approval.Status.EXPIRED


def test_policy_api(owner_client, make_client, tenant, agent):
    assert (
        owner_client.post("/api/settings/policy", {"default_allow": False}, format="json").json()["default_action"]
        == "deny"
    )
    body = owner_client.post(
        "/api/settings/policy/tool",
        {"tool": "http_get", "action": "require_approval", "agent": "assistant"},
        format="json",
    ).json()
    assert body["tools"] == [{"tool": "http_get", "action": "require_approval", "agent": "assistant"}]
    assert owner_client.delete("/api/settings/policy/tool/http_get?agent=assistant").status_code == 204
    assert owner_client.delete("/api/settings/policy/tool/http_get").status_code == 404
    bad = owner_client.post("/api/settings/policy/tool", {"tool": "x", "action": "maybe"}, format="json")
    assert bad.status_code == 400
    member = make_client(tenant, role=Role.MEMBER)
    assert member.post("/api/settings/policy", {"default_allow": True}, format="json").status_code == 403

    entered = owner_client.post("/api/settings/guardrails/safe-mode/enter", {"reason": "drill"}, format="json")
    assert entered.json()["enabled"] is True
    assert owner_client.get("/api/settings/guardrails/status").json()["safe_mode"]["reason"] == "drill"
    assert owner_client.post("/api/settings/guardrails/safe-mode/exit").json()["enabled"] is False


def test_simulate_describes_without_running(owner_client, tenant):
    read = owner_client.post(
        "/api/settings/simulate/tool", {"tool": "calculator", "args": {"expression": "1+1"}}, format="json"
    ).json()
    assert read["reversible"] is True
    assert read["policy"]["action"] == "allow"
    external = owner_client.post(
        "/api/settings/simulate/tool", {"tool": "http_get", "args": {"url": "https://example.com"}}, format="json"
    ).json()
    assert external["reversible"] is False
    assert external["warnings"]
    bad = owner_client.post("/api/settings/simulate/tool", {"tool": "calculator", "args": {}}, format="json")
    assert bad.status_code == 400
    assert owner_client.post("/api/settings/simulate/tool", {"tool": "nope"}, format="json").status_code == 404


def test_every_write_tool_has_a_dry_run():
    from apps.tools.registry import SideEffect

    writers = [t for t in builtin_registry.tools(builtin_registry.names()) if t.side_effect == SideEffect.WRITE]
    assert all(getattr(t, "dry_run", None) for t in writers), [t.name for t in writers]


def test_http_get_behind_approval_waits_then_finishes(chat, tenant, owner_client, django_capture_on_commit_callbacks):
    """The issue's walk-through: an admin gates http_get, a turn that wants it waits, the approval
    is listed and announced, and approving it lets the turn finish."""
    owner_client.post("/api/settings/policy/tool", {"tool": "http_get", "action": "require_approval"}, format="json")
    turn = chat("please fetch https://example.com/")
    turn.refresh_from_db()
    assert turn.status == Turn.Status.WAITING_APPROVAL
    [pending] = owner_client.get("/api/approvals").json()["results"]
    assert pending["tool_name"] == "http_get"
    assert pending["arguments"] == {"url": "https://example.com/"}
    assert Event.objects.filter(turn_id=turn.pk, type="approval_request").exists()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/api/approvals/{pending['id']}/approve", {}, format="json")
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED  # the fetch itself may fail offline; the turn goes on
    assert ToolCall.objects.get(turn=turn).status in (ToolCall.Status.COMPLETED, ToolCall.Status.FAILED)


@pytest.mark.usefixtures("gated")
def test_the_policys_reason_and_the_deciders_reason_are_kept_apart(
    chat, owner_client, django_capture_on_commit_callbacks
):
    turn, approval = parked_turn(chat)
    pending = owner_client.get(f"/api/approvals/{approval.pk}").json()
    assert pending["policy_reason"] == "tenant rule for current_time: require_approval"
    assert pending["decision_reason"] == ""
    with django_capture_on_commit_callbacks(execute=True):
        denied = owner_client.post(f"/api/approvals/{approval.pk}/deny", {"reason": "not today"}, format="json")
    assert denied.json()["policy_reason"] == "tenant rule for current_time: require_approval"
    assert denied.json()["decision_reason"] == "not today"
    resolved = Event.objects.get(turn_id=turn.pk, type="approval_resolved").data
    assert resolved["decision_reason"] == "not today"
    requested = Event.objects.get(turn_id=turn.pk, type="approval_request").data
    assert requested["policy_reason"] == pending["policy_reason"]


@pytest.mark.usefixtures("gated")
def test_approvals_and_events_carry_our_call_id_and_the_models_apart(chat, owner_client):
    turn, approval = parked_turn(chat)
    call = approval.tool_call
    body = owner_client.get(f"/api/approvals/{approval.pk}").json()
    assert (body["tool_call_id"], body["model_call_id"]) == (str(call.pk), "call_offline_1")
    for kind in ("tool_call", "approval_request"):
        data = Event.objects.get(turn_id=turn.pk, type=kind).data
        assert (data["tool_call_id"], data["model_call_id"]) == (str(call.pk), "call_offline_1"), kind
    decisions = owner_client.get(f"/api/audit/policy/{turn.pk}").json()["decisions"]
    assert (decisions[0]["tool_call_id"], decisions[0]["model_call_id"]) == (str(call.pk), "call_offline_1")


@pytest.mark.usefixtures("gated")
def test_an_approved_call_records_when_it_started(chat, owner_client, django_capture_on_commit_callbacks):
    turn, approval = parked_turn(chat)
    assert ToolCall.objects.get(turn=turn).started_at is None  # waiting is not running
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/api/approvals/{approval.pk}/approve", {}, format="json")
    call = ToolCall.objects.get(turn=turn)
    assert call.status == ToolCall.Status.COMPLETED
    assert call.started_at is not None
    assert approval.created_at < call.started_at <= call.finished_at
    [listed] = owner_client.get(f"/api/turns/{turn.pk}/tools").json()["results"]
    assert listed["started_at"] is not None
    result = Event.objects.get(turn_id=turn.pk, type="tool_result").data
    assert result["tool_call_id"] == str(call.pk)


@pytest.mark.usefixtures("gated")
def test_the_session_form_also_takes_the_models_call_id_with_its_turn(
    chat, owner_client, django_capture_on_commit_callbacks
):
    turn, _ = parked_turn(chat)
    url = f"/api/sessions/{turn.session_id}/approve"
    no_turn = owner_client.post(url, {"model_call_id": "call_offline_1", "action": "approve"}, format="json")
    assert no_turn.status_code == 400
    assert "turn_id" in no_turn.json()["fields"]
    neither = owner_client.post(url, {"action": "approve"}, format="json")
    assert neither.status_code == 400
    assert "tool_call_id" in neither.json()["fields"]
    body = {"turn_id": str(turn.pk), "model_call_id": "call_offline_1", "action": "approve"}
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url, body, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "approved"


@pytest.mark.usefixtures("gated")
def test_the_migration_recovers_the_policys_reason_of_decided_approvals(chat):
    """Before 0002 a decision overwrote the one `reason` column; the tool call still holds what
    the policy said."""
    _, approval = parked_turn(chat)
    Approval.objects.filter(pk=approval.pk).update(status="denied", policy_reason="the decider's words")
    importlib.import_module("apps.policy.migrations.0002_approval_reasons").split_reasons(django_apps, None)
    approval.refresh_from_db()
    assert approval.policy_reason == "tenant rule for current_time: require_approval"
    assert approval.decision_reason == "the decider's words"


@pytest.mark.usefixtures("gated")
def test_a_resumed_turn_waits_in_the_outbox_until_the_broker_takes_it(chat, owner_client, settings):
    from apps.conversations import dispatch

    settings.TURN_DISPATCH_GRACE_SECONDS = 0
    turn, approval = parked_turn(chat)
    Turn.objects.filter(pk=turn.pk).update(dispatched_at=timezone.now())  # sent once, when it was posted
    # The approval commits but its on-commit send never happens (as when the broker is down).
    assert owner_client.post(f"/api/approvals/{approval.pk}/approve", {}, format="json").status_code == 200
    turn.refresh_from_db()
    assert (turn.status, turn.dispatched_at) == (Turn.Status.QUEUED, None)
    assert dispatch.turns_dispatch_pending() == 1
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert Event.objects.filter(turn_id=turn.pk, type="tool_result").count() == 1
