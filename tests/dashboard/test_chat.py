"""The chat page in a real browser, with turns run by the session's real Celery worker: the
offline model for tool calls and approvals, the stub model server for controlled streaming and
for seeing what reached the model."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.agents.services import tenant_bootstrap_agents
from apps.conversations import services
from apps.conversations.models import Feedback, Message, Turn
from apps.policy.services import tool_rule_set
from apps.tenancy.principal import Actor
from tests.dashboard.browser import session_cookie_for
from tests.factories import MembershipFactory, TenantFactory
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SYSTEM = Actor.system("test")
# The first turn of a fresh worker on a busy 2-core machine can take several seconds (imports,
# first connections): waits for a turn's progress get more than expect()'s default 5 s.
TURN = 30_000


def offline_session(tenant, title=""):
    agent = tenant_bootstrap_agents(tenant=tenant, actor=SYSTEM)
    return services.session_create(tenant=tenant, agent=agent, title=title)


def stub_session(tenant, make_provider):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="stub", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    agent = Agent.objects.create(tenant=tenant, name="storyteller", guide_model=model)
    return services.session_create(tenant=tenant, agent=agent, title="Stories")


def open_live(page, session):
    page.goto(f"/chat/{session.pk}/")
    expect(page.locator("#chat")).to_have_attribute("data-socket", "live")


def say(page, text):
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")


def test_a_member_chats_watches_a_tool_run_approves_it_in_place_and_grades_the_answer(
    page, sign_in, real_worker, dashboard_server
):
    _, tenant = sign_in("admin")  # deciding approvals needs the admin role (the tenant's default)
    tenant_bootstrap_agents(tenant=tenant, actor=SYSTEM)
    tool_rule_set(tenant=tenant, actor=SYSTEM, tool_name="current_time", action="require_approval")

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/chat/$"))
    page.get_by_label("Agent").select_option(label="assistant")
    page.get_by_role("button", name="Start chatting").click()
    expect(page.get_by_role("heading", name="Say hello to assistant")).to_be_visible()  # the empty state
    expect(page.locator("#chat")).to_have_attribute("data-socket", "live")

    say(page, "Hello there")
    first = page.locator(".turn").first
    expect(first.locator(".answer")).to_contain_text("(offline model)", timeout=TURN)
    expect(first.locator(".turn-status")).to_have_text("Completed")
    assert page.evaluate("performance.getEntriesByName('message-posted').length") == 1
    assert page.evaluate("performance.getEntriesByName('first-token-drawn').length") == 1

    # A member watching the same session sees the card but may not decide (admin by default).
    member = MembershipFactory(tenant=tenant, role="member").user
    watcher_context = page.context.browser.new_context(base_url=dashboard_server.url)
    watcher_context.add_cookies([session_cookie_for(member, base_url=dashboard_server.url)])
    watcher = watcher_context.new_page()
    watcher.goto(page.url)
    expect(watcher.locator("#chat")).to_have_attribute("data-socket", "live")

    say(page, "what time is it?")
    second = page.locator(".turn").nth(1)
    card = second.get_by_role("group", name="Approval needed")
    expect(card).to_contain_text("current_time", timeout=TURN)
    page.reload()  # a parked turn is rebuilt from its replayed events: one call, one card
    expect(card).to_contain_text("current_time")
    assert second.locator(".tool-call").count() == 1
    assert second.locator(".approval-card").count() == 1
    watched = watcher.locator(".turn").nth(1).get_by_role("group", name="Approval needed")
    expect(watched).to_contain_text("Waiting for someone with the admin role")
    assert watched.get_by_role("button", name="Approve").is_hidden()
    expect(second.locator(".tool-call")).to_contain_text("Waiting approval")
    card.get_by_label("Reason for the decision (optional)").fill("fine by me")
    card.get_by_role("button", name="Approve").click()
    expect(second.locator(".answer")).to_contain_text("current_time returned", timeout=TURN)
    expect(second.locator(".turn-status")).to_have_text("Completed")
    expect(second.locator(".tool-call")).to_contain_text("Completed")  # redrawn from the server, folded
    turn = Turn.objects.get(session__tenant=tenant, input_message__parts__0__text="what time is it?")
    expect(second.get_by_role("link", name="Inspect")).to_have_attribute("href", f"/turns/{turn.pk}/")
    # The watcher stayed in step; the finished turn keeps the decision with its call.
    expect(watcher.locator(".turn .answer").nth(1)).to_contain_text("current_time returned")
    expect(watcher.locator(".turn").nth(1).locator(".approval-outcome")).to_contain_text("Approved")
    expect(watcher.locator(".turn").nth(1).locator(".approval-outcome")).to_contain_text("fine by me")
    watcher_context.close()

    second.locator(".grade label").nth(3).click()
    second.get_by_label("Comment on this answer").fill("right on time")
    second.get_by_role("button", name="Grade").click()
    expect(page.locator(".toast")).to_contain_text("grade is saved")
    feedback = Feedback.objects.get(turn=turn)
    assert (feedback.grade, feedback.comment) == (4, "right on time")


def test_editing_a_past_message_resends_it_on_a_fork_and_the_old_branch_stays(page, sign_in, real_worker):
    _, tenant = sign_in("member")
    session = offline_session(tenant, title="Ideas")
    open_live(page, session)
    say(page, "first idea")
    expect(page.locator(".turn .answer").first).to_contain_text("first idea", timeout=TURN)
    say(page, "second idea")
    expect(page.locator(".turn .turn-status").nth(1)).to_have_text("Completed", timeout=TURN)

    page.locator(".msg.user").first.get_by_role("button", name="Edit and resend").click()
    page.get_by_label("Edited message").fill("a better first idea")
    page.get_by_role("button", name="Send as a new branch").click()
    expect(page.locator(".fork-note")).to_contain_text("Forked from Ideas")
    expect(page).not_to_have_url(re.compile(str(session.pk)))
    expect(page.locator(".msg.user")).to_have_count(1)
    expect(page.locator(".turn .answer")).to_contain_text("a better first idea", timeout=TURN)

    page.locator(".fork-note a").click()
    expect(page.locator(".msg.user")).to_have_count(2)
    expect(page.locator(".msg.user").first).to_contain_text("first idea")
    assert Message.objects.filter(session=session, role="user").count() == 2


def test_a_viewer_reads_safe_markdown_but_cannot_post_and_another_tenants_session_is_a_404(page, sign_in):
    _, tenant = sign_in("viewer")
    session = offline_session(tenant, title="Shared")
    question = Message.objects.create(
        tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": "hi"}]
    )
    answer_text = "Use this:\n\n```python\nprint('hi')\n```\n\n<img src=x onerror=alert(1)> **done**"
    answer = Message.objects.create(
        tenant=tenant, session=session, role="assistant", parts=[{"type": "text", "text": answer_text}]
    )
    Turn.objects.create(
        tenant=tenant, session=session, input_message=question, output_message=answer, status="completed"
    )

    page.goto(f"/chat/{session.pk}/")
    expect(page.locator(".answer pre code.hljs")).to_contain_text("print")
    expect(page.get_by_role("button", name="Copy code")).to_be_visible()
    expect(page.locator(".answer strong")).to_have_text("done")
    assert page.locator(".answer [onerror]").count() == 0
    expect(page.get_by_text("You are a viewer here")).to_be_visible()
    assert page.get_by_label("Message").count() == 0
    assert page.get_by_role("button", name="Retry").count() == 0
    assert page.get_by_role("button", name="Edit and resend").count() == 0

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the code block scrolls, not the page
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 800})

    services.session_create(tenant=tenant, agent=session.agent, title="Budget review")
    page.get_by_label("Search sessions").fill("budg")  # htmx swaps the list as one types
    expect(page.locator(".session-list a")).to_have_count(1)
    expect(page.locator(".session-list a")).to_contain_text("Budget review")

    theirs = offline_session(TenantFactory(), title="Their secret plans")
    response = page.goto(f"/chat/{theirs.pk}/")
    assert response.status == 404
    expect(page.get_by_role("heading")).to_have_text("Nothing here")


def test_a_reload_mid_answer_resumes_without_duplicates_and_a_second_tab_follows(
    page, sign_in, real_worker, model_server, make_provider
):
    _, tenant = sign_in("member")
    session = stub_session(tenant, make_provider)
    words = [f"w{i} " for i in range(1, 31)]
    model_server.script([Reply(chunks=words, chunk_delay=0.1)])
    expected = [w.strip() for w in words]
    other = page.context.new_page()
    open_live(other, session)
    open_live(page, session)

    say(page, "tell me a long story")
    expect(page.locator(".turn .answer")).to_contain_text("w5", timeout=TURN)
    page.reload()
    expect(page.locator(".turn .answer")).to_contain_text("w15")
    seen = page.locator(".turn .answer").inner_text().split()
    assert seen == expected[: len(seen)], seen  # replayed from the log: no gap, nothing twice
    expect(page.locator(".turn .turn-status")).to_have_text("Completed", timeout=TURN)
    assert page.locator(".turn .answer").inner_text().split() == expected

    expect(other.locator(".msg.user")).to_contain_text("tell me a long story")  # posted in the first tab
    expect(other.locator(".turn .turn-status")).to_have_text("Completed")
    assert other.locator(".turn .answer").inner_text().split() == expected
    other.close()


def test_an_attached_file_is_uploaded_and_reaches_the_model(page, sign_in, real_worker, model_server, make_provider):
    _, tenant = sign_in("member")
    session = stub_session(tenant, make_provider)
    model_server.script([Reply(text="Your notes mention a pineapple.")])
    open_live(page, session)

    page.locator("#composer-attach").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"The launch code is pineapple."}]
    )
    expect(page.locator("#composer-files .file-chip")).to_have_attribute("data-ref", re.compile(r"\S"))
    say(page, "what do my notes say?")
    expect(page.locator(".turn .answer")).to_contain_text("mention a pineapple", timeout=TURN)
    expect(page.locator(".msg.user .file-chip")).to_contain_text("notes.txt")
    assert "The launch code is pineapple." in json.dumps(model_server.requests[-1])


def test_stop_ends_a_streaming_answer_and_retry_answers_again(page, sign_in, real_worker, model_server, make_provider):
    _, tenant = sign_in("member")
    session = stub_session(tenant, make_provider)
    model_server.script([Reply(chunks=[f"s{i} " for i in range(1, 61)], chunk_delay=0.1), Reply(text="Second try.")])
    open_live(page, session)

    say(page, "ramble on")
    first = page.locator(".turn").first
    expect(first.locator(".answer")).to_contain_text("s3", timeout=TURN)
    page.get_by_role("button", name="Stop").click()
    expect(first.locator(".turn-status")).to_have_text("Cancelled")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    assert "s60" not in first.locator(".answer").inner_text()

    first.get_by_role("button", name="Retry").click()
    again = page.locator(".turn").nth(1)
    expect(again.locator(".answer")).to_have_text("Second try.", timeout=TURN)
    expect(again.locator(".turn-status")).to_have_text("Completed")
    assert Turn.objects.get(session=session, retry_of__isnull=False).retry_of.status == "cancelled"
