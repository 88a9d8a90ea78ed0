"""One list shape, 404s that say what is missing, and feedback that changes only what is sent."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from apps.conversations.models import ChatSession, Feedback, Turn
from apps.policy import services as policy_services
from apps.tenancy.models import Role
from apps.tenancy.principal import Actor

pytestmark = pytest.mark.django_db

PAGE_KEYS = {"count", "next", "previous", "results"}


def test_turn_tools_feedback_audit_and_approvals_lists_are_paginated(chat, owner_client, tenant, make_client):
    turn = chat("what time is it?")
    other = make_client(tenant, role=Role.MEMBER)
    owner_client.post(f"/api/turns/{turn.pk}/feedback", {"grade": 5}, format="json")
    other.post(f"/api/turns/{turn.pk}/feedback", {"grade": 3}, format="json")

    for path in (
        f"/api/turns/{turn.pk}/tools",
        f"/api/turns/{turn.pk}/feedback",
        f"/api/audit/tools/{turn.pk}",
        "/api/approvals?status=all",
        f"/api/sessions/{chat.session_id}/messages",
    ):
        body = owner_client.get(path).json()
        assert set(body) == PAGE_KEYS, path

    first_page = owner_client.get(f"/api/turns/{turn.pk}/feedback?limit=1").json()
    assert first_page["count"] == 2
    assert len(first_page["results"]) == 1
    assert "offset=1" in first_page["next"]
    [call] = owner_client.get(f"/api/turns/{turn.pk}/tools").json()["results"]
    assert call["model_call_id"] == "call_offline_1"


def test_the_schema_documents_those_lists_as_paginated():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, component in (
        ("/api/turns/{turn_id}/tools", "PaginatedToolCallList"),
        ("/api/turns/{turn_id}/feedback", "PaginatedFeedbackList"),
        ("/api/audit/tools/{turn_id}", "PaginatedToolCallList"),
        ("/api/approvals", "PaginatedApprovalList"),
        ("/api/sessions/{session_id}/messages", "PaginatedMessageList"),
    ):
        get = schema["paths"][path]["get"]
        assert get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(component), path
        assert {"limit", "offset"} <= {p["name"] for p in get["parameters"]}, path


def test_every_404_says_what_was_not_found(chat, owner_client, other_tenant, make_client):
    turn = chat("hi")
    stranger = make_client(other_tenant)
    missing = "0190a1c2-0000-7000-8000-000000000000"
    probes = [
        (owner_client, "get", f"/api/sessions/{missing}", None),
        (owner_client, "get", f"/api/sessions/{missing}/messages", None),
        (owner_client, "post", f"/api/sessions/{chat.session_id}/cancel", None),  # nothing active
        (owner_client, "get", f"/api/turns/{missing}", None),
        (owner_client, "get", f"/api/turns/{missing}/tools", None),
        (owner_client, "get", f"/api/turns/{missing}/feedback", None),
        (owner_client, "get", f"/api/approvals/{missing}", None),
        (owner_client, "post", f"/api/sessions/{chat.session_id}/approve", {"tool_call_id": missing, "action": "deny"}),
        (owner_client, "get", f"/api/audit/policy/{missing}", None),
        (owner_client, "delete", "/api/settings/policy/tool/never_ruled", None),
        (owner_client, "post", "/api/settings/simulate/tool", {"tool": "no_such_tool"}),
        (owner_client, "post", "/api/agent/message", {"text": "hi", "session_id": missing}),
        (owner_client, "get", "/api/keys/not-a-uuid_123", None),
        (owner_client, "get", "/api/no/such/route", None),
        # Another tenant's ids are 404s like any missing id, with the same kind of message.
        (stranger, "get", f"/api/sessions/{chat.session_id}", None),
        (stranger, "get", f"/api/turns/{turn.pk}/tools", None),
        (stranger, "post", f"/api/turns/{turn.pk}/feedback", {"grade": 1}),
        (stranger, "post", "/api/agent/message", {"text": "hi", "sessionId": chat.session_id}),
    ]
    for client, method, path, body in probes:
        send = getattr(client, method)
        response = send(path) if body is None else send(path, body, format="json")
        assert response.status_code == 404, (method, path, response.content)
        payload = response.json()
        assert payload["error"] == "Not found", path
        assert payload.get("message"), (method, path, payload)
    assert (
        owner_client.post("/api/settings/simulate/tool", {"tool": "no_such_tool"}, format="json").json()["message"]
        == "No tool named 'no_such_tool'."
    )


def test_a_second_feedback_with_only_a_grade_keeps_the_comment(chat, owner_client):
    turn = chat("hi")
    url = f"/api/turns/{turn.pk}/feedback"
    assert owner_client.post(url, {"grade": 4, "comment": "clear answer"}, format="json").status_code == 201

    regraded = owner_client.post(url, {"grade": 2}, format="json")
    assert regraded.status_code == 200
    assert regraded.json()["grade"] == 2
    assert regraded.json()["comment"] == "clear answer"

    recommented = owner_client.put(url, {"comment": "on second thought, wrong"}, format="json")
    assert recommented.status_code == 200
    assert (recommented.json()["grade"], recommented.json()["comment"]) == (2, "on second thought, wrong")

    cleared = owner_client.post(url, {"comment": ""}, format="json").json()
    assert (cleared["grade"], cleared["comment"]) == (2, "")
    assert Feedback.objects.filter(turn=turn).count() == 1


def test_a_first_feedback_needs_a_grade(chat, owner_client):
    turn = chat("hi")
    url = f"/api/turns/{turn.pk}/feedback"
    comment_only = owner_client.post(url, {"comment": "no grade yet"}, format="json")
    assert comment_only.status_code == 400
    assert "grade" in comment_only.json()["fields"]
    empty = owner_client.post(url, {}, format="json")
    assert empty.status_code == 400
    assert "grade" in empty.json()["fields"]
    assert not Feedback.objects.filter(turn=turn).exists()


def test_a_cancel_of_a_queued_turn_answers_200_with_the_final_status(owner_client, agent):
    session_id = owner_client.post("/api/sessions", {}, format="json").json()["id"]
    # Without capturing on-commit callbacks the turn stays queued.
    owner_client.post(f"/api/sessions/{session_id}/messages", {"text": "hi"}, format="json")
    response = owner_client.post(f"/api/sessions/{session_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = owner_client.post(f"/api/sessions/{session_id}/cancel")
    assert again.status_code == 404
    assert again.json()["message"] == "This session has no active turn."


@pytest.fixture
def gated(tenant):
    policy_services.tool_rule_set(
        tenant=tenant, actor=Actor.system("test"), tool_name="current_time", action="require_approval"
    )


@pytest.mark.usefixtures("gated")
def test_each_turns_approval_names_its_own_call_while_the_model_reuses_its_ids(chat, owner_client):
    another_session = owner_client.post("/api/sessions", {}, format="json").json()["id"]
    first, second = chat("what time is it?"), chat("what time is it now?", session=another_session)
    approvals = owner_client.get("/api/approvals").json()["results"]
    assert len(approvals) == 2
    # The offline model numbers calls per turn: both say call_offline_1. Our ids differ.
    assert {a["model_call_id"] for a in approvals} == {"call_offline_1"}
    assert len({a["tool_call_id"] for a in approvals}) == 2
    tools_of_first = owner_client.get(f"/api/turns/{first.pk}/tools").json()["results"]
    by_turn = {a["turn_id"]: a for a in approvals}
    assert by_turn[str(first.pk)]["tool_call_id"] == tools_of_first[0]["id"]
    assert by_turn[str(second.pk)]["tool_call_id"] != tools_of_first[0]["id"]


@pytest.mark.parametrize(
    ("path", "body", "unknown"),
    [
        ("/api/agent/message", {"text": "hi", "sesion_id": "x"}, ["sesion_id"]),
        ("/api/agent/message", {"text": "hi", "temperature": 0, "stream": True}, ["stream", "temperature"]),
        ("/api/agent/message/stream", {"text": "hi", "sessionID": "x"}, ["sessionID"]),
        ("/api/tasks", {"topic": "sum", "text": "1+1"}, ["text"]),
    ],
)
def test_sync_faces_refuse_unknown_fields_naming_them(owner_client, agent, path, body, unknown):
    response = owner_client.post(path, body, format="json")
    assert response.status_code == 400
    assert sorted(response.json()["fields"]) == unknown
    assert not ChatSession.objects.exists()


def test_two_session_spellings_naming_different_sessions_are_refused(owner_client, agent):
    one, two = (owner_client.post("/api/sessions", {}, format="json").json()["id"] for _ in range(2))
    response = owner_client.post(
        "/api/agent/message", {"text": "hi", "sessionId": one, "session_id": two}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"sessionId", "session_id"}
    assert not Turn.objects.exists()


def test_other_error_bodies_carry_a_message_too(owner_client, settings):
    malformed = owner_client.get("/api/turns/a.b/tools")
    wrong_method = owner_client.put("/api/tenants/current", {}, format="json")
    settings.API_RATE_LIMIT = "1/minute"
    owner_client.get("/api/tenants/current")
    limited = owner_client.get("/api/tenants/current")
    for response, code in ((malformed, 400), (wrong_method, 405), (limited, 429)):
        assert response.status_code == code
        assert response.json()["error"], code
        assert response.json()["message"], code
