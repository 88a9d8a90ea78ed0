"""Session forks: a copy of the history up to a message in a new session, the old branch kept."""

from __future__ import annotations

import pytest
from django.conf import settings

from apps.conversations.models import Attachment, ChatSession, Message
from apps.tenancy.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(chat, owner_client):
    """Three answered questions in one session (the offline model); (session id, messages)."""
    for text in ("first question", "second question", "third question"):
        chat(text)
    messages = owner_client.get(f"/api/sessions/{chat.session_id}/messages").json()["results"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    return chat.session_id, messages


def fork(client, session_id, **body):
    return client.post(f"/api/sessions/{session_id}/fork", body, format="json")


def texts(client, session_id) -> list[str]:
    return [m["text"] for m in client.get(f"/api/sessions/{session_id}/messages").json()["results"]]


def test_fork_at_a_message_copies_the_history_up_to_and_including_it(owner_client, conversation):
    session_id, messages = conversation
    response = fork(owner_client, session_id, at_message_id=messages[3]["id"])
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["forked_from"] == session_id
    assert body["forked_at_message"] == messages[3]["id"]
    assert body["fork_kind"] == "at"
    assert body["forks"] == []
    assert body["title"].endswith("(fork)")
    parent = owner_client.get(f"/api/sessions/{session_id}").json()
    assert body["agent_id"] == parent["agent_id"]
    assert texts(owner_client, body["id"]) == [m["text"] for m in messages[:4]]
    # The old branch is untouched and points at its fork.
    assert texts(owner_client, session_id) == [m["text"] for m in messages]
    assert parent["forks"] == [body["id"]]
    assert parent["forked_from"] is None


def test_fork_before_a_message_copies_strictly_before_it(owner_client, conversation):
    session_id, messages = conversation
    body = fork(owner_client, session_id, before_message_id=messages[2]["id"]).json()
    assert body["fork_kind"] == "before"
    assert texts(owner_client, body["id"]) == [m["text"] for m in messages[:2]]
    copied = Message.objects.filter(session_id=body["id"]).order_by("created_at")
    assert [m.metadata["copied_from"] for m in copied] == [m["id"] for m in messages[:2]]


def test_edit_and_resend_answers_from_the_forked_history(owner_client, conversation, chat):
    session_id, messages = conversation
    fork_id = fork(owner_client, session_id, before_message_id=messages[2]["id"]).json()["id"]
    turn = chat("second question, edited", session=fork_id)
    assert turn.status == "completed", turn.error
    history = [h["text"] for h in turn.context_snapshot["history"]]
    assert history == [messages[0]["text"], messages[1]["text"]]
    assert texts(owner_client, fork_id)[-2] == "second question, edited"
    assert len(texts(owner_client, session_id)) == 6


def test_the_list_shows_where_a_session_was_forked_from(owner_client, conversation):
    session_id, messages = conversation
    fork_id = fork(owner_client, session_id, at_message_id=messages[1]["id"]).json()["id"]
    listed = {s["id"]: s for s in owner_client.get("/api/sessions").json()["results"]}
    assert listed[fork_id]["forked_from"] == session_id
    assert listed[session_id]["forked_from"] is None


def test_a_message_of_another_session_is_404(owner_client, conversation, agent):
    session_id, _ = conversation
    other = owner_client.post("/api/sessions", {"agent": agent.name}, format="json").json()["id"]
    foreign = owner_client.post(f"/api/sessions/{other}/messages", {"text": "x", "auto_run": False}, format="json")
    response = fork(owner_client, session_id, at_message_id=foreign.json()["message_id"])
    assert response.status_code == 404
    assert "No message" in response.json()["message"]
    assert not ChatSession.objects.filter(forked_from_id=session_id).exists()


@pytest.mark.parametrize("body", [{}, {"at_message_id": "not-a-uuid"}, {"at_message_id": None, "extra": 1}])
def test_a_fork_needs_exactly_one_well_formed_message_id(owner_client, conversation, body):
    session_id, _ = conversation
    assert fork(owner_client, session_id, **body).status_code == 400


def test_both_ids_at_once_is_400(owner_client, conversation):
    session_id, messages = conversation
    response = fork(owner_client, session_id, at_message_id=messages[0]["id"], before_message_id=messages[1]["id"])
    assert response.status_code == 400
    assert "exactly one" in str(response.json()["fields"])


def test_a_viewer_cannot_fork_and_another_tenant_gets_404(tenant, other_tenant, make_client, conversation):
    session_id, messages = conversation
    assert fork(make_client(tenant, role=Role.VIEWER), session_id, at_message_id=messages[0]["id"]).status_code == 403
    stranger = make_client(other_tenant, role=Role.OWNER)
    assert fork(stranger, session_id, at_message_id=messages[0]["id"]).status_code == 404


def test_attachments_stay_readable_in_the_fork_even_after_the_parent_is_deleted(
    owner_client, agent, tenant, django_capture_on_commit_callbacks
):
    session_id = owner_client.post("/api/sessions", {"agent": agent.name}, format="json").json()["id"]
    upload = owner_client.post(
        f"/api/sessions/{session_id}/attachments",
        {"filename": "plan.txt", "data": "cGxhbiBB", "mime_type": "text/plain"},
        format="json",
    ).json()
    ref = upload["ref"]
    with django_capture_on_commit_callbacks(execute=True):
        posted = owner_client.post(
            f"/api/sessions/{session_id}/messages",
            {"parts": [{"type": "text", "text": "see"}, {"type": "file", "ref": ref}]},
            format="json",
        )
    fork_id = fork(owner_client, session_id, before_message_id=posted.json()["message_id"]).json()["id"]

    # The edited message names the parent's attachment; the fork has it under the same ref.
    resent = owner_client.post(
        f"/api/sessions/{fork_id}/messages",
        {"parts": [{"type": "text", "text": "see, edited"}, {"type": "file", "ref": ref}], "auto_run": False},
        format="json",
    )
    assert resent.status_code == 202, resent.json()
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.delete(f"/api/sessions/{session_id}").status_code == 204

    download = owner_client.get(f"/api/sessions/{fork_id}/attachments/{ref}")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"plan A"
    copy = Attachment.objects.get(session_id=fork_id, ref=ref)
    assert (settings.ATTACHMENT_ROOT / str(tenant.pk) / str(copy.pk)).exists()
    assert owner_client.get(f"/api/sessions/{fork_id}").json()["forked_from"] is None  # the parent is gone
