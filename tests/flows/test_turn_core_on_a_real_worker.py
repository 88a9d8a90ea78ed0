"""The turn core on a real Celery worker (leases of 4 s, a heartbeat every 1 s: tests/live_workers.py):
a worker killed in the middle of a side-effecting tool call, a tool call longer than the lease,
and five messages posted to one session at once."""

from __future__ import annotations

import itertools
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from agentplatform.celery import app as celery_app
from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.agents.services import tenant_bootstrap_agents
from apps.conversations.models import ToolCall, Turn
from apps.conversations.tasks import recover_stale_turns
from apps.tenancy.principal import Actor
from tests.conftest import create_key
from tests.stubs.mcp_demo import demo_mcp_over_http
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_providers")]

SLOW_TOOL = "demo__record_and_wait"


@pytest.fixture
def run_log(tmp_path) -> Path:
    return tmp_path / "runs.log"


@pytest.fixture
def demo_mcp_url(run_log):
    """The demo MCP server over streamable HTTP, counting the runs of its slow tool in `run_log`."""
    with demo_mcp_over_http({"DEMO_RUN_LOG": str(run_log)}) as url:
        yield url


@pytest.fixture
def api(live_server, tenant):
    _, key = create_key(tenant)
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        yield client


@pytest.fixture
def slow_agent(tenant, api, settings, demo_mcp_url, make_provider) -> Agent:
    settings.OUTBOUND_ALLOW_LOOPBACK = True  # the tenant's MCP server is on loopback in this test
    registered = api.post("/api/plugins", json={"name": "demo", "config": {"url": demo_mcp_url}})
    assert registered.status_code == 201, registered.text
    assert registered.json()["status"] == "ready", registered.json()
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    return Agent.objects.create(tenant=tenant, name="slow", guide_model=model, enabled_tools=[SLOW_TOOL])


def runs(run_log: Path) -> list[str]:
    return run_log.read_text().split() if run_log.exists() else []


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_turn(api, agent: Agent, text: str) -> str:
    session = api.post("/api/sessions", json={"agent": agent.name}).json()["id"]
    accepted = api.post(f"/api/sessions/{session}/messages", json={"text": text})
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["turn_id"]


def final(turn_id: str, timeout: float = 60) -> Turn:
    return wait_for(
        lambda: (
            Turn.objects.filter(pk=turn_id, status__in=Turn.FINAL)
            .select_related("output_message", "input_message")
            .first()
        ),
        timeout,
        f"turn {turn_id} to end",
    )


def pid_running_the_turn(turn_id: str) -> int:
    def find():
        for tasks in (celery_app.control.inspect(timeout=1).active() or {}).values():
            for task in tasks:
                if task["name"].endswith("execute_turn") and turn_id in str(task.get("args")):
                    return task["worker_pid"]
        return None

    return wait_for(find, 15, "the worker process running the turn")


def test_a_worker_killed_during_a_side_effect_does_not_repeat_it(api, slow_agent, model_server, run_log, real_worker):
    model_server.script([Reply(tool_calls=[(SLOW_TOOL, {"key": "charge-card", "seconds": 3})]), Reply(text="Done.")])
    turn_id = start_turn(api, slow_agent, "charge the card")
    wait_for(lambda: runs(run_log), 30, "the tool call to start")
    os.kill(pid_running_the_turn(turn_id), signal.SIGKILL)  # the pool child dies mid-call
    killed_at = time.monotonic()

    turn = final(turn_id)
    taken_over_in = time.monotonic() - killed_at
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert runs(run_log) == ["charge-card"]  # the side effect happened once
    assert turn.crash_count == 1
    call = ToolCall.objects.get(turn_id=turn_id)
    assert call.status == ToolCall.Status.INTERRUPTED  # not run again; the model was told
    assert "may or may not have taken effect" in call.result
    assert turn.output_message.text == "Done."
    print(f"turn completed {taken_over_in:.1f} s after its worker was killed (lease 4 s)")


def test_a_tool_call_longer_than_the_lease_keeps_its_turn(api, slow_agent, model_server, run_log, real_worker):
    model_server.script([Reply(tool_calls=[(SLOW_TOOL, {"key": "long-job", "seconds": 9})]), Reply(text="Finished.")])
    turn_id = start_turn(api, slow_agent, "run the long job")
    wait_for(lambda: runs(run_log), 30, "the tool call to start")
    sweeps = 0
    while not Turn.objects.filter(pk=turn_id, status__in=Turn.FINAL).exists():
        # The recovery sweep (beat runs it every few seconds) finds nothing to take over.
        assert recover_stale_turns() == 0
        sweeps += 1
        time.sleep(0.5)
    turn = final(turn_id)
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert runs(run_log) == ["long-job"]
    assert (turn.attempt, turn.crash_count) == (1, 0)
    assert ToolCall.objects.get(turn_id=turn_id).status == ToolCall.Status.COMPLETED
    assert sweeps > 10  # the call outlived the 4 s lease more than twice over


def test_five_messages_posted_at_once_are_answered_in_order(api, tenant, real_worker):
    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    session = api.post("/api/sessions", json={"agent": "assistant"}).json()["id"]

    def send(n: int) -> str:
        accepted = api.post(f"/api/sessions/{session}/messages", json={"text": f"note {n}: remember nothing"})
        assert accepted.status_code == 202, accepted.text
        return accepted.json()["turn_id"]

    with ThreadPoolExecutor(5) as pool:
        turn_ids = list(pool.map(send, range(5)))
    done = sorted((final(turn_id) for turn_id in turn_ids), key=lambda t: t.input_message.created_at)
    assert [t.status for t in done] == [Turn.Status.COMPLETED] * 5
    for earlier, later in itertools.pairwise(done):
        assert earlier.finished_at <= later.started_at  # never two at a time, in posting order
    for index, turn in enumerate(done):
        answers = [m["text"] for m in turn.context_snapshot["history"] if m["role"] == "assistant"]
        assert answers == [before.output_message.text for before in done[:index]]
