"""The turn core in one process: ordered sessions and multitask, resumes counted apart from crash
attempts, the typed progress, a tool that outlives its lease, and cancel racing approve."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations import services
from apps.conversations.models import Message, ToolCall, Turn
from apps.conversations.turns import services as turns
from apps.conversations.turns import state
from apps.conversations.turns.parking import StepRecord, TurnProgress
from apps.core.errors import Conflict
from apps.events.models import Event
from apps.policy import services as policy
from apps.policy.models import Approval
from apps.tenancy.principal import Actor
from apps.tools.registry import SideEffect, Tool, builtin_registry
from tests.factories import turn_for_message
from tests.stubs.model_server import Reply

SYSTEM = Actor.system("test")


def post(tenant, session, text, *, multitask="enqueue"):
    return services.message_post(
        tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": text}], multitask=multitask
    )


def event_types(turn) -> list[str]:
    return list(Event.objects.filter(turn_id=turn.pk).order_by("id").values_list("type", flat=True))


def approver():
    return {"actor": SYSTEM, "actor_role": "owner"}


# --- ordered sessions ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_five_messages_posted_at_once_are_answered_one_at_a_time_in_order(
    tenant, agent, django_capture_on_commit_callbacks
):
    session = services.session_create(tenant=tenant, agent=agent)
    with django_capture_on_commit_callbacks(execute=False):  # all five posted before any runs
        posted = [post(tenant, session, f"message number {n}")[1] for n in range(1, 6)]
    # Workers pick the tasks up in any order: a turn with an earlier one still active waits.
    for turn in reversed(posted[1:]):
        assert turns.turn_execute(turn_id=turn.pk).state == "blocked"
    with django_capture_on_commit_callbacks(execute=True):  # each end sends the next turn
        assert turns.turn_execute(turn_id=posted[0].pk).state == "ran"

    done = [Turn.objects.select_related("output_message").get(pk=t.pk) for t in posted]
    assert [t.status for t in done] == [Turn.Status.COMPLETED] * 5
    for earlier, later in itertools.pairwise(done):
        assert earlier.finished_at <= later.started_at  # never two at a time
    for index, turn in enumerate(done):
        history = [(m["role"], m["text"]) for m in turn.context_snapshot["history"]]
        expected = []
        for before in done[:index]:  # every earlier answer, right after its question
            expected += [
                ("user", f"message number {done.index(before) + 1}"),
                ("assistant", before.output_message.text),
            ]
        assert history == expected


@pytest.mark.django_db
def test_a_queued_turn_says_what_it_waits_for(tenant, agent, django_capture_on_commit_callbacks):
    session = services.session_create(tenant=tenant, agent=agent)
    with django_capture_on_commit_callbacks(execute=False):
        _, first = post(tenant, session, "one")
        _, second = post(tenant, session, "two")
    queued = Event.objects.get(turn_id=second.pk, type="turn_queued").data
    assert queued == {"behind_turn_ids": [str(first.pk)], "position": 1, "multitask": "enqueue"}
    assert not Event.objects.filter(turn_id=first.pk, type="turn_queued").exists()


@pytest.fixture
def gated(tenant):
    policy.tool_rule_set(tenant=tenant, actor=SYSTEM, tool_name="current_time", action="require_approval")


@pytest.fixture
def parked(tenant, agent, gated, django_capture_on_commit_callbacks):
    """A session whose turn waits for approval of its current_time call."""
    session = services.session_create(tenant=tenant, agent=agent)
    with django_capture_on_commit_callbacks(execute=True):
        _, turn = post(tenant, session, "what time is it?")
    turn.refresh_from_db()
    assert turn.status == Turn.Status.WAITING_APPROVAL
    return session, turn


@pytest.mark.django_db
def test_enqueue_behind_a_parked_turn_waits_for_the_decision(tenant, parked, django_capture_on_commit_callbacks):
    session, first = parked
    with django_capture_on_commit_callbacks(execute=True):
        _, second = post(tenant, session, "hello there")
    assert Turn.objects.get(pk=second.pk).status == Turn.Status.QUEUED  # blocked: the first waits
    approval = Approval.objects.get(turn=first)
    with django_capture_on_commit_callbacks(execute=True):
        turns.turn_resume(tenant=tenant, approval=approval, approve=True, **approver())
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Turn.Status.COMPLETED, Turn.Status.COMPLETED)
    assert first.finished_at <= second.started_at
    assert [m["text"] for m in second.context_snapshot["history"]][-1] == first.output_message.text


@pytest.mark.django_db
def test_reject_answers_409_and_stores_nothing(tenant, parked):
    session, first = parked
    messages_before = Message.objects.filter(session=session).count()
    with pytest.raises(Conflict) as refused:
        post(tenant, session, "are you there?", multitask="reject")
    assert str(first.pk) in str(refused.value.detail)
    assert Message.objects.filter(session=session).count() == messages_before
    assert Turn.objects.filter(session=session).count() == 1
    rejected = Event.objects.get(session_id=session.pk, type="message_rejected").data
    assert rejected == {"active_turn_id": str(first.pk), "multitask": "reject"}
    assert Turn.objects.get(pk=first.pk).status == Turn.Status.WAITING_APPROVAL  # untouched


@pytest.mark.django_db
def test_reject_on_an_idle_session_posts_as_usual(tenant, agent, django_capture_on_commit_callbacks):
    session = services.session_create(tenant=tenant, agent=agent)
    with django_capture_on_commit_callbacks(execute=True):
        _, turn = post(tenant, session, "hello", multitask="reject")
    assert Turn.objects.get(pk=turn.pk).status == Turn.Status.COMPLETED


@pytest.mark.django_db
@pytest.mark.parametrize(("multitask", "reason"), [("interrupt", "interrupted"), ("rollback", "rolled back")])
def test_interrupt_and_rollback_stop_a_parked_turn_and_run_the_new_one(
    tenant, parked, multitask, reason, django_capture_on_commit_callbacks
):
    session, first = parked
    # The parked turn had said something before its tool call: its partial answer.
    progress = TurnProgress.load(first.progress)
    progress.answer_so_far = ["Let me look at the clock."]
    Turn.objects.filter(pk=first.pk).update(progress=progress.as_json())

    with django_capture_on_commit_callbacks(execute=True):
        _, second = post(tenant, session, "never mind, say hello", multitask=multitask)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Turn.Status.CANCELLED
    assert first.cancel_reason == reason
    assert Approval.objects.get(turn=first).status == Approval.Status.EXPIRED
    assert ToolCall.objects.get(turn=first).status != ToolCall.Status.COMPLETED  # the gated call never ran
    assert second.status == Turn.Status.COMPLETED
    interrupted = Event.objects.get(turn_id=first.pk, type="turn_interrupted").data
    assert interrupted == {"by_turn_id": str(second.pk), "multitask": multitask, "outcome": "ended"}
    history = [m["text"] for m in second.context_snapshot["history"]]
    if multitask == "interrupt":
        assert first.output_message.text == "Let me look at the clock."
        assert history == ["what time is it?", "Let me look at the clock."]
    else:
        assert first.output_message is None
        assert history == ["what time is it?"]
    cancelled = Event.objects.get(turn_id=first.pk, type="turn_cancelled").data
    assert cancelled["reason"] == reason


@pytest.mark.django_db
def test_an_unknown_multitask_is_a_400(owner_client, agent):
    session = owner_client.post("/api/sessions", {"agent": agent.name}, format="json").json()["id"]
    response = owner_client.post(f"/api/sessions/{session}/messages", {"text": "x", "multitask": "race"}, format="json")
    assert response.status_code == 400
    assert "multitask" in response.json()["fields"]


@pytest.mark.django_db
def test_reject_over_http_is_a_409_naming_the_active_turn(owner_client, tenant, parked):
    session, first = parked
    response = owner_client.post(
        f"/api/sessions/{session.pk}/messages", {"text": "x", "multitask": "reject"}, format="json"
    )
    assert response.status_code == 409
    assert str(first.pk) in response.json()["message"]


# --- resumes are not crash attempts -----------------------------------------------------------------


@pytest.fixture
def stub_agent(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    return Agent.objects.create(tenant=tenant, name="stub-agent", guide_model=model, enabled_tools=["calculator"])


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_providers")
def test_three_gated_calls_in_one_turn_all_run_after_approval(
    tenant, stub_agent, model_server, django_capture_on_commit_callbacks
):
    policy.tool_rule_set(tenant=tenant, actor=SYSTEM, tool_name="calculator", action="require_approval")
    model_server.script(
        [
            Reply(tool_calls=[("calculator", {"expression": "1+1"})]),
            Reply(tool_calls=[("calculator", {"expression": "2+2"})]),
            Reply(tool_calls=[("calculator", {"expression": "3+3"})]),
            Reply(text="2, 4 and 6."),
        ]
    )
    session = services.session_create(tenant=tenant, agent=stub_agent)
    with django_capture_on_commit_callbacks(execute=True):
        _, turn = post(tenant, session, "add things")
    for _ in range(3):
        turn.refresh_from_db()
        assert turn.status == Turn.Status.WAITING_APPROVAL, turn.error
        approval = Approval.objects.get(turn=turn, status=Approval.Status.PENDING)
        with django_capture_on_commit_callbacks(execute=True):
            turns.turn_resume(tenant=tenant, approval=approval, approve=True, **approver())
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert turn.output_message.text == "2, 4 and 6."
    assert (turn.crash_count, turn.resume_count, turn.attempt) == (0, 3, 4)
    calls = ToolCall.objects.filter(turn=turn).order_by("step")
    assert [c.status for c in calls] == [ToolCall.Status.COMPLETED] * 3
    assert [json.loads(c.result)["result"] for c in calls] == [2, 4, 6]
    assert [e for e in event_types(turn) if e == "tool_result"] == ["tool_result"] * 3
    started = Event.objects.filter(turn_id=turn.pk, type="turn_started").order_by("id")
    assert [e.data.get("resumed", False) for e in started] == [False, True, True, True]


# --- the typed progress ---------------------------------------------------------------------------


def test_progress_round_trips_and_refuses_a_version_it_does_not_know():
    progress = TurnProgress(
        steps=[
            StepRecord.from_json({"step": 1, "text": "hm", "tool_calls": [{"id": "c1", "name": "x", "arguments": {}}]})
        ],
        answer_so_far=["hm"],
    )
    progress.spent.input_tokens = 12
    stored = progress.as_json()
    assert stored["version"] == 1
    again = TurnProgress.load(stored)
    assert again.as_json() == stored
    assert again.last_step == 1
    assert TurnProgress.load({}).is_empty
    with pytest.raises(ValueError, match="version"):
        TurnProgress.load({**stored, "version": 99})


# --- a tool that outlives the lease -----------------------------------------------------------------


@pytest.fixture
def slow_tool(settings):
    """A write tool that takes longer than the lease and counts its runs."""
    runs: list[float] = []

    def handler(_context, arguments):
        runs.append(time.monotonic())
        time.sleep(float(arguments.get("seconds", 1.5)))
        return "written"

    tool = builtin_registry.register(
        Tool(
            name="slow_write",
            description="Write slowly.",
            parameters={"type": "object", "properties": {"seconds": {"type": "number"}}},
            handler=handler,
            side_effect=SideEffect.WRITE,
        )
    )
    yield tool, runs
    builtin_registry._tools.pop(tool.name, None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_providers")
def test_a_tool_that_outlives_the_lease_runs_once_and_the_turn_completes(
    tenant, make_provider, model_server, slow_tool, settings
):
    settings.TURN_LEASE_SECONDS, settings.TURN_HEARTBEAT_SECONDS = 0.6, 0.1
    tool, runs = slow_tool
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    agent = Agent.objects.create(tenant=tenant, name="slow", guide_model=model, enabled_tools=[tool.name])
    model_server.script([Reply(tool_calls=[(tool.name, {"seconds": 2.0})]), Reply(text="done")])
    turn = turn_for_message(tenant=tenant, agent=agent, text="go")

    worker = threading.Thread(target=lambda: (turns.turn_execute(turn_id=turn.pk), connection.close()))
    worker.start()
    deadline = time.monotonic() + 10
    while not runs and time.monotonic() < deadline:  # the tool is running on the worker
        time.sleep(0.02)
    rivals = []
    while worker.is_alive():  # a redelivered task, again and again, while the tool runs
        rivals.append(turns.turn_execute(turn_id=turn.pk).state)
        time.sleep(0.15)
    worker.join()
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert len(runs) == 1
    assert set(rivals) <= {"busy", "skipped"}  # never "ran": the lease never lapsed
    assert "busy" in rivals
    assert (turn.attempt, turn.crash_count) == (1, 0)


# --- a takeover resumes from the progress, and never reruns a started call -----------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_providers")
def test_a_takeover_does_not_rerun_a_call_the_dead_worker_started(
    tenant, make_provider, model_server, slow_tool, django_capture_on_commit_callbacks
):
    tool, runs = slow_tool
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    agent = Agent.objects.create(tenant=tenant, name="slow", guide_model=model, enabled_tools=[tool.name, "calculator"])
    # What a worker that died in the middle of step 1 left: the step recorded, the slow call
    # claimed (running at attempt 1), the calculator call not reached; its lease ran out.
    step = StepRecord.from_json(
        {
            "step": 1,
            "text": "On it.",
            "tool_calls": [
                {"id": "c1", "name": tool.name, "arguments": {"seconds": 0}},
                {"id": "c2", "name": "calculator", "arguments": {"expression": "2*21"}},
            ],
        }
    )
    progress = TurnProgress(steps=[step], answer_so_far=["On it."])
    turn = turn_for_message(
        tenant=tenant,
        agent=agent,
        text="go",
        status=Turn.Status.RUNNING,
        attempt=1,
        lease_expires_at=timezone.now(),
        progress=progress.as_json(),
    )
    ToolCall.objects.create(
        tenant=tenant,
        turn=turn,
        step=1,
        call_id="c1",
        name=tool.name,
        arguments={"seconds": 0},
        status=ToolCall.Status.RUNNING,
        attempt=1,
    )
    model_server.script([Reply(text=" Done.")])
    with django_capture_on_commit_callbacks(execute=True):
        assert turns.turn_execute(turn_id=turn.pk).takeover
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert (turn.attempt, turn.crash_count) == (2, 1)
    assert runs == []  # the started call is not run again
    interrupted, computed = ToolCall.objects.filter(turn=turn).order_by("call_id")
    assert interrupted.status == ToolCall.Status.INTERRUPTED
    assert "may or may not have taken effect" in interrupted.result
    assert (computed.status, json.loads(computed.result)["result"], computed.attempt) == ("completed", 42, 2)
    assert turn.output_message.text == "On it. Done."
    # The model was told: the interrupted call's result is in what it was sent.
    sent = model_server.requests[-1]["messages"]
    assert any("may or may not have taken effect" in str(m.get("content")) for m in sent)
    started = Event.objects.filter(turn_id=turn.pk, type="turn_started").get().data
    assert started["takeover"] is True


# --- cancel racing approve: one transaction, one winner ---------------------------------------------


def _hold_in_transaction(work, hold: float, ready: threading.Event) -> threading.Thread:
    def run():
        try:
            with transaction.atomic():
                work()
                ready.set()
                time.sleep(hold)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_cancel_first_then_approve_gets_409_and_the_call_never_runs(tenant, agent, gated):
    session = services.session_create(tenant=tenant, agent=agent)
    _, turn = post(tenant, session, "what time is it?")
    turn.refresh_from_db()
    assert turn.status == Turn.Status.WAITING_APPROVAL
    approval = Approval.objects.get(turn=turn)

    ready = threading.Event()
    canceller = _hold_in_transaction(lambda: state.turn_stop(turn_id=turn.pk), hold=0.5, ready=ready)
    ready.wait(5)
    started = time.monotonic()
    with pytest.raises(Conflict):  # waits for the cancel's lock, then finds the approval closed
        turns.turn_resume(tenant=tenant, approval=approval, approve=True, **approver())
    assert time.monotonic() - started >= 0.3  # it did wait for the cancel to commit
    canceller.join()
    turn.refresh_from_db()
    assert turn.status == Turn.Status.CANCELLED
    assert Approval.objects.get(pk=approval.pk).status == Approval.Status.EXPIRED
    assert not Event.objects.filter(turn_id=turn.pk, type="tool_result", data__status="completed").exists()


@pytest.mark.django_db(transaction=True)
def test_approve_first_then_cancel_ends_the_resumed_turn_before_the_call_runs(tenant, agent, gated):
    session = services.session_create(tenant=tenant, agent=agent)
    _, turn = post(tenant, session, "what time is it?")
    turn.refresh_from_db()
    approval = Approval.objects.get(turn=turn)
    sent: list = []

    def approve():
        turns.turn_resume(tenant=tenant, approval=approval, approve=True, **approver())
        sent.append(Turn.objects.get(pk=turn.pk).status)

    ready = threading.Event()
    approver_thread = _hold_in_transaction(approve, hold=0.5, ready=ready)
    ready.wait(5)
    outcome = state.turn_stop(turn_id=turn.pk)  # waits for the approve's lock
    approver_thread.join()
    assert sent == [Turn.Status.QUEUED]
    turn.refresh_from_db()
    if outcome == "ended":  # the cancel came before a worker claimed the resumed turn
        assert turn.status == Turn.Status.CANCELLED
        assert ToolCall.objects.get(turn=turn).status != ToolCall.Status.COMPLETED
    else:  # a worker had it already (eager dispatch in this process): it ran, then saw the stop
        assert outcome in ("finished", "stopping")
    assert Approval.objects.get(pk=approval.pk).status == Approval.Status.APPROVED
