"""/api/agent/message takes attachment parts too, for the session they were uploaded to."""

from __future__ import annotations

import base64

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_agent_message_reads_an_attachment_of_the_continued_session(owner_client, agent):
    session_id = owner_client.post("/api/sessions", {"agent": agent.name}, format="json").json()["id"]
    ref = owner_client.post(
        f"/api/sessions/{session_id}/attachments",
        {"filename": "todo.md", "data": base64.b64encode(b"- ship it\n").decode()},
        format="json",
    ).json()["ref"]

    reply = owner_client.post(
        "/api/agent/message",
        {"text": "what is on my list?", "sessionId": session_id, "parts": [{"type": "file", "ref": ref}]},
        format="json",
    )

    assert reply.status_code == 200, reply.json()
    assert "todo.md (text/markdown, 10 bytes, all 10 characters read)" in reply.json()["text"]


def test_agent_message_refs_without_a_session_are_400(owner_client, agent):
    reply = owner_client.post(
        "/api/agent/message", {"text": "read", "parts": [{"type": "file", "ref": "att_x"}]}, format="json"
    )
    assert reply.status_code == 400
    assert "sessionId" in reply.json()["fields"]["parts"][0]
