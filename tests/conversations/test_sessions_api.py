from __future__ import annotations

import pytest

from apps.conversations.models import Turn
from apps.tenancy.models import Role

pytestmark = pytest.mark.django_db


def test_sessions_crud_most_recent_first(owner_client, agent):
    first = owner_client.post("/api/sessions", {"title": "one"}, format="json")
    assert first.status_code == 201
    assert first.json()["agent"] == "assistant"
    second = owner_client.post("/api/sessions", {"title": "two", "agent": agent.name}, format="json").json()
    listed = owner_client.get("/api/sessions").json()["results"]
    assert [s["title"] for s in listed] == ["two", "one"]

    patched = owner_client.patch(f"/api/sessions/{second['id']}", {"archived": True, "nickname": "n"}, format="json")
    assert patched.json()["archived"] is True
    assert patched.json()["nickname"] == "n"
    assert [s["title"] for s in owner_client.get("/api/sessions?archived=false").json()["results"]] == ["one"]
    assert owner_client.delete(f"/api/sessions/{second['id']}").status_code == 204
    assert owner_client.get(f"/api/sessions/{second['id']}").status_code == 404


def test_unknown_agent_is_a_validation_error(owner_client, agent):
    response = owner_client.post("/api/sessions", {"agent": "nobody"}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["agent"] == ["No such agent."]


def test_post_message_answers_202_with_ids_and_history_lists_both(chat, owner_client):
    turn = chat("hello")
    history = owner_client.get(f"/api/sessions/{chat.session_id}/messages").json()
    assert [m["role"] for m in history["results"]] == ["user", "assistant"]
    assert history["results"][0]["text"] == "hello"
    assert str(turn.pk) in owner_client.get(f"/api/sessions/{chat.session_id}/turns").content.decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "parts"),
        ({"parts": [{"type": "text", "text": "  "}]}, "parts"),
        ({"parts": [{"type": "image"}]}, "parts"),
        ({"parts": [{"type": "image", "url": "file:///etc/passwd"}]}, "parts"),
        ({"parts": [{"type": "video", "text": "x"}]}, "parts"),
        ({"text": "hi", "role": "assistant"}, "role"),
    ],
)
def test_bad_messages_are_400_naming_the_field(owner_client, agent, body, field):
    session_id = owner_client.post("/api/sessions", {}, format="json").json()["id"]
    response = owner_client.post(f"/api/sessions/{session_id}/messages", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_auto_run_false_stores_without_a_turn(owner_client, agent):
    session_id = owner_client.post("/api/sessions", {}, format="json").json()["id"]
    response = owner_client.post(
        f"/api/sessions/{session_id}/messages", {"text": "note", "auto_run": False}, format="json"
    )
    assert response.status_code == 202
    assert response.json()["turn_id"] is None
    assert not Turn.objects.exists()


def test_viewer_cannot_chat(tenant, make_client, agent):
    viewer = make_client(tenant, role=Role.VIEWER)
    session = viewer.post("/api/sessions", {}, format="json")
    assert session.status_code == 403


def test_observatory_endpoints(chat, owner_client):
    turn = chat("what time is it?")
    detail = owner_client.get(f"/api/turns/{turn.pk}").json()
    assert detail["status"] == "completed"
    assert detail["tool_call_count"] == 1
    context = owner_client.get(f"/api/turns/{turn.pk}/context").json()["context"]
    assert context["input"][0]["text"] == "what time is it?"
    tools = owner_client.get(f"/api/turns/{turn.pk}/tools").json()
    assert tools["count"] == 1
    assert tools["results"][0]["name"] == "current_time"
    assert tools["results"][0]["policy"]["action"] == "allow"
    selection = owner_client.get(f"/api/turns/{turn.pk}/model-selection").json()
    assert selection["chosen"] == selection["answered_by"] == "offline/offline-small"


def test_feedback_create_replace_and_list(chat, owner_client):
    turn = chat("hi")
    created = owner_client.post(f"/api/turns/{turn.pk}/feedback", {"grade": 4, "comment": "ok"}, format="json")
    assert created.status_code == 201
    replaced = owner_client.put(f"/api/turns/{turn.pk}/feedback", {"grade": 2}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["grade"] == 2
    assert owner_client.get(f"/api/turns/{turn.pk}/feedback").json()["count"] == 1
    session_feedback = owner_client.get(f"/api/sessions/{chat.session_id}/feedback").json()
    assert session_feedback["count"] == 1
    bad = owner_client.post(f"/api/turns/{turn.pk}/feedback", {"grade": 6}, format="json")
    assert bad.status_code == 400
    assert "grade" in bad.json()["fields"]


def test_retry_makes_a_new_turn_from_the_same_input(chat, owner_client, django_capture_on_commit_callbacks):
    turn = chat("what is 2+2?")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/api/sessions/{chat.session_id}/turns/{turn.pk}/retry")
    assert response.status_code == 202
    new = Turn.objects.get(pk=response.json()["id"])
    assert new.input_message_id == turn.input_message_id
    assert new.retry_of_id == turn.pk
    assert new.status == Turn.Status.COMPLETED


def test_cancel_a_queued_turn(owner_client, agent):
    session_id = owner_client.post("/api/sessions", {}, format="json").json()["id"]
    # Without capturing on-commit callbacks the turn stays queued.
    turn_id = owner_client.post(f"/api/sessions/{session_id}/messages", {"text": "hi"}, format="json").json()["turn_id"]
    response = owner_client.post(f"/api/sessions/{session_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert Turn.objects.get(pk=turn_id).status == Turn.Status.CANCELLED
    assert owner_client.post(f"/api/sessions/{session_id}/cancel").status_code == 404


def test_monthly_budget_refuses_new_turns(chat, owner_client, tenant):
    from decimal import Decimal

    from apps.conversations.budgets import budget_settle

    turn = chat("hi")
    budget_settle(turn=turn, cost_usd=Decimal("5"))  # as a settled model call: the Turn row and the ledger
    tenant.settings = {"monthly_budget_usd": "5.00"}
    tenant.save()
    response = owner_client.post(f"/api/sessions/{chat.session_id}/messages", {"text": "again"}, format="json")
    assert response.status_code == 402
    assert response.json()["error"] == "Budget exhausted"
    assert response.json()["budget"] == "tenant_monthly"
    assert "monthly_budget_usd" in response.json()["message"]
