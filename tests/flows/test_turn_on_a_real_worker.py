"""A turn from HTTP to answer through a real Celery worker and the embedded Redis broker."""

from __future__ import annotations

import time

import httpx
import pytest

from apps.agents.services import tenant_bootstrap_agents
from apps.tenancy.principal import Actor
from tests.conftest import create_key

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _wait_final(client: httpx.Client, turn_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turn = client.get(f"/api/turns/{turn_id}").json()
        if turn["status"] in ("completed", "failed", "cancelled"):
            return turn
        time.sleep(0.1)
    raise AssertionError(f"turn {turn_id} did not finish: {turn}")


def test_what_time_is_it_end_to_end(live_server, real_worker, tenant):
    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    _, key = create_key(tenant)
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        session = client.post("/api/sessions", json={"title": "e2e"}).json()
        accepted = client.post(f"/api/sessions/{session['id']}/messages", json={"text": "what time is it?"})
        assert accepted.status_code == 202
        turn = _wait_final(client, accepted.json()["turn_id"])
        assert turn["status"] == "completed", turn["error"]
        assert turn["tool_call_count"] == 1
        tools = client.get(f"/api/turns/{turn['id']}/tools").json()["results"]
        assert tools[0]["name"] == "current_time"
        assert tools[0]["status"] == "completed"
        history = client.get(f"/api/sessions/{session['id']}/messages").json()["results"]
        assert history[-1]["role"] == "assistant"
        assert "current_time" in history[-1]["text"]


def test_synchronous_face_waits_for_the_worker(live_server, real_worker, tenant):
    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    _, key = create_key(tenant)
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        reply = client.post("/api/agent/message", json={"text": "what is 6*7?"})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert "42" in body["text"]
        assert body["metadata"]["toolCallCount"] == 1
        assert body["metadata"]["offline"] is True
        follow_up = client.post("/api/agent/message", json={"text": "thanks", "sessionId": body["sessionId"]})
        assert follow_up.json()["sessionId"] == body["sessionId"]

        task = client.post("/api/tasks", json={"topic": "what is 2+2?"}).json()
        assert "4" in task["text"]
        assert task["taskId"]


def test_streaming_face_sends_the_turns_events_as_sse(live_server, real_worker, tenant):
    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    _, key = create_key(tenant)
    events = []
    with (
        httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client,
        client.stream("POST", "/api/agent/message/stream", json={"text": "what time is it?"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
    assert events[0] == "turn_started"
    assert events[-1] == "chat_complete"
    assert {"decision", "tool_call", "tool_result", "chat_token"} <= set(events)
