"""Attachments reach models: image bytes as base64 through the real openai and anthropic SDKs
(the stub model server records what arrived), text files read into the prompt within the
token budget, and the offline model says what it was given."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations import services
from apps.conversations.attachments import attachment_create
from apps.conversations.models import Turn
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_providers")]


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 128, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=[ProviderKind.OPENAI, ProviderKind.ANTHROPIC])
def vision_agent(request, tenant, make_provider):
    provider = make_provider(tenant, kind=request.param, name=f"p-{request.param}", models=["stub-small", "stub-eyes"])
    CatalogModel.objects.filter(provider=provider, model_id="stub-eyes").update(supports_vision=True)
    agent = Agent.objects.create(
        tenant=tenant,
        name=f"eyes-{request.param}",
        guide_model=CatalogModel.objects.get(provider=provider, model_id="stub-small"),
        vision_model=CatalogModel.objects.get(provider=provider, model_id="stub-eyes"),
    )
    agent.kind = request.param
    return agent


@pytest.fixture
def ask(tenant, django_capture_on_commit_callbacks):
    """`ask(session, parts)`: post a user message and run its turn inline; the finished turn."""

    def run(session, parts) -> Turn:
        with django_capture_on_commit_callbacks(execute=True):
            _, turn = services.message_post(tenant=tenant, session=session, role="user", parts=parts)
        turn.refresh_from_db()
        return turn

    return run


def user_content(request_body: dict):
    """The last user message's content as the provider's wire format carries it."""
    return [m for m in request_body["messages"] if m["role"] == "user"][-1]["content"]


def test_an_attached_image_reaches_the_vision_model_as_base64(vision_agent, tenant, ask, model_server):
    session = services.session_create(tenant=tenant, agent=vision_agent)
    data = png()
    ref = attachment_create(
        tenant=tenant, session=session, filename="blue.png", declared_type="image/png", data=data
    ).ref
    model_server.script([Reply(text="a blue square")])

    turn = ask(session, [{"type": "text", "text": "what is this?"}, {"type": "image", "ref": ref}])

    assert turn.status == Turn.Status.COMPLETED, turn.error
    sent = model_server.requests[0]
    assert sent["model"] == "stub-eyes"
    content = user_content(sent)
    encoded = base64.b64encode(data).decode()
    if vision_agent.kind == ProviderKind.OPENAI:
        assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}} in content
    else:
        assert {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": encoded}} in content
    assert ref not in json.dumps(sent)  # the ref itself is never sent as if it were a URL
    assert turn.context_snapshot["attachments"][0]["shown"] == "image"
    assert encoded not in json.dumps(turn.context_snapshot)  # the snapshot names files, it does not copy them


def test_a_text_files_contents_arrive_in_the_prompt(vision_agent, tenant, ask, model_server):
    session = services.session_create(tenant=tenant, agent=vision_agent)
    text = "name,score\nada,97\ngrace,99\n"
    ref = attachment_create(
        tenant=tenant, session=session, filename="scores.csv", declared_type="text/csv", data=text.encode()
    ).ref
    model_server.script([Reply(text="grace leads")])

    turn = ask(session, [{"type": "text", "text": "who leads?"}, {"type": "file", "ref": ref}])

    assert turn.status == Turn.Status.COMPLETED, turn.error
    sent = model_server.requests[0]
    assert sent["model"] == "stub-small"  # no image: no vision model needed
    wire = json.dumps(user_content(sent))
    assert json.dumps(text)[1:-1] in wire
    assert 'name=\\"scores.csv\\"' in wire
    assert "who leads?" in wire


def test_a_long_text_file_is_cut_to_the_token_budget_with_a_note(vision_agent, tenant, ask, model_server, settings):
    settings.ATTACHMENT_TEXT_TOKEN_BUDGET = 20
    session = services.session_create(tenant=tenant, agent=vision_agent)
    words = " ".join(f"word{i}" for i in range(2000))
    ref = attachment_create(
        tenant=tenant, session=session, filename="long.txt", declared_type="text/plain", data=words.encode()
    ).ref
    model_server.script([Reply(text="ok")])

    turn = ask(session, [{"type": "text", "text": "summarise"}, {"type": "file", "ref": ref}])

    wire = json.dumps(user_content(model_server.requests[0]))
    assert "word0 " in wire
    assert "word1999" not in wire
    assert "long.txt was cut short" in wire
    assert "ATTACHMENT_TEXT_TOKEN_BUDGET" in wire
    info = turn.context_snapshot["attachments"][0]
    assert info["truncated"] is True
    assert info["chars_shown"] < info["chars"] == len(words)


def test_files_of_the_history_share_the_budget_after_the_inputs(vision_agent, tenant, ask, model_server, settings):
    settings.ATTACHMENT_TEXT_TOKEN_BUDGET = 30
    session = services.session_create(tenant=tenant, agent=vision_agent)
    old = attachment_create(
        tenant=tenant, session=session, filename="old.txt", declared_type="text/plain", data=b"old " * 100
    ).ref
    model_server.script([Reply(text="first"), Reply(text="second")])
    ask(session, [{"type": "text", "text": "keep this"}, {"type": "file", "ref": old}])
    new = attachment_create(
        tenant=tenant, session=session, filename="new.txt", declared_type="text/plain", data=b"new " * 100
    ).ref

    turn = ask(session, [{"type": "text", "text": "and this"}, {"type": "file", "ref": new}])

    shown = {a["name"]: a["shown"] for a in turn.context_snapshot["attachments"]}
    assert shown == {"new.txt": "text", "old.txt": "note"}
    assert "budget (ATTACHMENT_TEXT_TOKEN_BUDGET) is spent" in json.dumps(model_server.requests[1]["messages"])


def test_the_offline_model_names_the_file_it_was_given(tenant, agent, ask):
    session = services.session_create(tenant=tenant, agent=agent)
    ref = attachment_create(
        tenant=tenant, session=session, filename="numbers.csv", declared_type="text/csv", data=b"a,b\n1-2,3*4\n"
    ).ref

    turn = ask(session, [{"type": "text", "text": "please read this"}, {"type": "file", "ref": ref}])

    assert turn.status == Turn.Status.COMPLETED, turn.error
    answer = turn.output_message.text
    assert "I received: please read this." in answer
    assert "I was given 1 file: numbers.csv (text/csv, 12 bytes, all 12 characters read)" in answer
    assert turn.tool_call_count == 0  # the file's "1-2" is no arithmetic question


def test_the_offline_model_says_it_cannot_see_an_attached_image(tenant, agent, ask):
    session = services.session_create(tenant=tenant, agent=agent)
    ref = attachment_create(tenant=tenant, session=session, filename="dot.png", declared_type="image/png", data=png())
    turn = ask(session, [{"type": "image", "ref": ref.ref}])
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert "dot.png (image/png" in turn.output_message.text
    assert "an image I cannot see" in turn.output_message.text


def test_a_deleted_attachment_is_a_note_not_a_failure(tenant, agent, ask, django_capture_on_commit_callbacks):
    from apps.conversations.attachments import attachment_delete

    session = services.session_create(tenant=tenant, agent=agent)
    attachment = attachment_create(
        tenant=tenant, session=session, filename="gone.txt", declared_type="text/plain", data=b"soon gone"
    )
    first = ask(session, [{"type": "text", "text": "hold this"}, {"type": "file", "ref": attachment.ref}])
    assert first.status == Turn.Status.COMPLETED
    with django_capture_on_commit_callbacks(execute=True):
        attachment_delete(tenant=tenant, attachment=attachment)

    later = ask(session, [{"type": "text", "text": "what did I send?"}])

    assert later.status == Turn.Status.COMPLETED, later.error
    assert later.context_snapshot["attachments"] == [{"ref": attachment.ref, "name": "gone.txt", "shown": "missing"}]
