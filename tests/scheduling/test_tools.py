"""Agents that schedule: "remind me tomorrow at 9 to call the bank" with the offline model, behind
the approval schedule_task needs by default; listing and cancelling from the same conversation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.conversations.models import Turn
from apps.policy.models import Approval
from apps.policy.services import policy_decide
from apps.scheduling.models import CronJob
from apps.tools.registry import ToolContext, builtin_registry, execute_tool

pytestmark = pytest.mark.django_db

SCHEDULING = ["schedule_task", "list_scheduled_tasks", "cancel_scheduled_task"]


@pytest.fixture
def scheduler_agent(agent):
    agent.enabled_tools = [*agent.enabled_tools, *SCHEDULING]
    agent.save()
    return agent


def test_schedule_task_needs_approval_by_default_and_a_rule_or_a_stricter_default_wins(
    tenant, scheduler_agent, owner_client
):
    tool = builtin_registry.get("schedule_task")
    decision = policy_decide(tenant=tenant, agent=scheduler_agent, tool=tool, arguments={})
    assert decision.action == "require_approval"
    assert "own default" in decision.reason
    assert (
        policy_decide(
            tenant=tenant, agent=scheduler_agent, tool=builtin_registry.get("list_scheduled_tasks"), arguments={}
        ).action
        == "allow"
    )
    owner_client.post("/api/settings/policy", {"default_action": "deny"}, format="json")
    assert policy_decide(tenant=tenant, agent=scheduler_agent, tool=tool, arguments={}).action == "deny"
    owner_client.post("/api/settings/policy/tool", {"tool": "schedule_task", "action": "allow"}, format="json")
    assert policy_decide(tenant=tenant, agent=scheduler_agent, tool=tool, arguments={}).action == "allow"


def test_remind_me_tomorrow_at_9_end_to_end(
    tenant, scheduler_agent, chat, owner_client, django_capture_on_commit_callbacks
):
    turn = chat("remind me tomorrow at 9 to call the bank")
    turn.refresh_from_db()
    assert turn.status == Turn.Status.WAITING_APPROVAL
    approval = Approval.objects.get(turn=turn)
    assert approval.tool_name == "schedule_task"
    assert approval.arguments["prompt"] == "Reminder: call the bank"
    assert not CronJob.objects.exists()  # nothing scheduled before a person says yes

    with django_capture_on_commit_callbacks(execute=True):
        decided = owner_client.post(f"/api/approvals/{approval.pk}/approve", {}, format="json")
    assert decided.status_code == 200
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    job = CronJob.objects.get()
    tomorrow = (timezone.now().astimezone(dt.UTC) + dt.timedelta(days=1)).date()
    assert job.at == dt.datetime.combine(tomorrow, dt.time(9, 0), tzinfo=dt.UTC)
    assert job.origin == "tool"
    assert job.agent == scheduler_agent
    assert str(job.session_id) == chat.session_id
    assert job.created_by == turn.session.created_by
    assert job.prompt == "Reminder: call the bank"
    assert "schedule_task returned" in turn.output_message.text

    # When it fires (run now here: tomorrow is far), the agent is prompted in the same conversation.
    with django_capture_on_commit_callbacks(execute=True):
        run = owner_client.post(f"/api/cron/jobs/{job.pk}/run").json()["run"]
    reminder = Turn.objects.get(pk=run["turnId"])
    assert str(reminder.session_id) == chat.session_id
    assert reminder.status == Turn.Status.COMPLETED
    assert "Reminder: call the bank" in reminder.output_message.text


def _context(tenant, agent, session_id, user=None) -> ToolContext:
    return ToolContext(tenant=tenant, agent=agent, user=user, session_id=session_id, turn_id="")


def test_list_and_cancel_see_only_this_conversations_tasks(tenant, scheduler_agent, chat):
    chat("hello")
    context = _context(tenant, scheduler_agent, chat.session_id)
    made = execute_tool(
        tool=builtin_registry.get("schedule_task"),
        arguments={"prompt": "water the plants", "cron": "0 8 * * *", "timezone": "Europe/Paris"},
        context=context,
    )
    assert made.ok, made.error
    job = CronJob.objects.get()
    assert job.tenant == tenant
    assert job.expression == "0 8 * * *"
    assert job.timezone == "Europe/Paris"
    listed = execute_tool(tool=builtin_registry.get("list_scheduled_tasks"), arguments={}, context=context)
    assert listed.data["count"] == 1
    assert listed.data["tasks"][0]["id"] == str(job.pk)

    # Another conversation (or tenant) sees none of them and cannot cancel them.
    from apps.conversations.models import ChatSession

    elsewhere = ChatSession.objects.create(tenant=tenant, agent=scheduler_agent)
    assert (
        execute_tool(
            tool=builtin_registry.get("list_scheduled_tasks"),
            arguments={},
            context=_context(tenant, scheduler_agent, str(elsewhere.pk)),
        ).data["count"]
        == 0
    )
    refused = execute_tool(
        tool=builtin_registry.get("cancel_scheduled_task"),
        arguments={"id": str(job.pk)},
        context=_context(tenant, scheduler_agent, str(elsewhere.pk)),
    )
    assert not refused.ok
    assert CronJob.objects.filter(pk=job.pk).exists()

    cancelled = execute_tool(
        tool=builtin_registry.get("cancel_scheduled_task"), arguments={"id": str(job.pk)}, context=context
    )
    assert cancelled.ok
    assert not CronJob.objects.exists()


def test_the_tool_takes_no_tenant_or_session_from_its_arguments(tenant, scheduler_agent, chat):
    chat("hello")
    outcome = execute_tool(
        tool=builtin_registry.get("schedule_task"),
        arguments={"prompt": "x", "at": "2099-01-01T09:00:00Z", "session": "someone-elses"},
        context=_context(tenant, scheduler_agent, chat.session_id),
    )
    assert not outcome.ok
    assert "Additional properties" in outcome.error
    past = execute_tool(
        tool=builtin_registry.get("schedule_task"),
        arguments={"prompt": "x", "at": "2001-01-01T09:00:00"},
        context=_context(tenant, scheduler_agent, chat.session_id),
    )
    assert not past.ok
    assert "past" in past.error
    assert not CronJob.objects.exists()


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("remind me tomorrow at 9 to call the bank", "2026-05-02T09:00:00+00:00"),
        ("Remind me at 5pm to leave.", "2026-05-01T17:00:00+00:00"),
        ("remind me at 9:30 to stand up", "2026-05-02T09:30:00+00:00"),  # 09:30 has passed today
        ("remind me in 10 minutes to stretch", "2026-05-01T12:10:00+00:00"),
    ],
)
def test_the_offline_model_reads_reminders(text, at):
    from apps.agents.providers.offline import reminder_arguments

    now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    arguments = reminder_arguments(text, now=now)
    assert arguments["at"] == at
    assert arguments["prompt"].startswith("Reminder: ")
    assert reminder_arguments("what is a reminder?", now=now) is None
