"""The turn observatory (`/turns/<id>/`): a turn the offline model really ran (context, router
decision, a tool call, usage, timings), shown in a browser; a turn no worker has started yet."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.agents.models import Agent
from apps.agents.services import tenant_bootstrap_agents
from apps.conversations import services as conversations
from apps.conversations.models import Turn
from apps.tenancy.principal import Actor
from tests.factories import MembershipFactory, TenantFactory, UserFactory, turn_for_message

pytestmark = [pytest.mark.django_db(transaction=True)]


def run_turn(tenant, text: str, *, session=None) -> Turn:
    """A turn through the turn core: posted, run by the (eager) task on commit, finished."""
    if not Agent.objects.filter(tenant=tenant).exists():
        tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    agent = Agent.objects.get(tenant=tenant, name="assistant")
    session = session or conversations.session_create(tenant=tenant, agent=agent, title="Arithmetic")
    _, turn = conversations.message_post(
        tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": text}]
    )
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    return turn


def test_a_finished_turn_records_each_model_call_for_the_waterfall():
    turn = run_turn(TenantFactory(), "what is 12*(3+4)?")
    timings = turn.metadata["timings"]
    calls = timings["model_calls"]
    assert [c["step"] for c in calls] == [1, 2]  # asked for the calculator, then answered
    assert all(c["ok"] and c["model"] == "offline/offline-small" and c["ms"] >= 0 for c in calls)
    assert sum(c["ms"] for c in calls) == pytest.approx(timings["model_ms"], abs=0.05)
    assert timings["context_at"]
    assert timings["context_ms"] >= 0


@pytest.mark.e2e
def test_the_observatory_shows_context_decision_tools_tokens_cost_and_a_waterfall(page, sign_in, dashboard_server):
    _user, tenant = sign_in("viewer")
    turn = run_turn(tenant, "what is 12*(3+4)?")

    page.goto(f"/turns/{turn.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Completed")
    expect(page.get_by_test_id("answered-by")).to_have_text("offline/offline-small")
    expect(page.get_by_test_id("tokens")).to_have_text(f"{turn.usage['input_tokens']} / {turn.usage['output_tokens']}")
    expect(page.get_by_test_id("selection")).to_contain_text(turn.model_selection["reason"])
    expect(page.get_by_test_id("system-prompt")).to_contain_text("helpful")
    calls = page.get_by_test_id("tool-calls")
    expect(calls).to_contain_text("calculator")
    expect(calls).to_contain_text("Completed")
    calls.get_by_text("Arguments and result").click()
    expect(calls).to_contain_text("12*(3+4)")
    expect(page.get_by_test_id("answer")).to_contain_text("84")

    # The waterfall: queue, context, two model calls and the tool, each bar sized by the script.
    rows = page.get_by_test_id("waterfall").locator("li")
    expect(rows).to_have_count(5)
    for kind in ("queue", "context", "model", "tool"):
        expect(page.locator(f".wf-{kind}").first).to_be_visible()
    widths = page.locator(".wf-bar").evaluate_all("bars => bars.map(b => b.style.width)")
    assert all(w.endswith("%") and float(w[:-1]) > 0 for w in widths), widths

    expect(page.get_by_role("link", name="Back to the session")).to_have_attribute("href", f"/chat/{turn.session_id}/")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: long prompts scroll inside their card
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


@pytest.mark.e2e
def test_a_turn_no_worker_started_says_so(page, sign_in):
    _, tenant = sign_in("member")
    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    turn = turn_for_message(tenant=tenant, agent=Agent.objects.get(tenant=tenant, name="assistant"), text="hi")

    page.goto(f"/turns/{turn.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Queued")
    expect(page.get_by_text("No timings yet")).to_be_visible()
    expect(page.get_by_text("No context yet")).to_be_visible()
    expect(page.get_by_text("The model called no tools")).to_be_visible()


def test_another_tenants_turn_is_a_404_page(client):
    other = TenantFactory()
    turn = run_turn(other, "hello")
    user = UserFactory()
    MembershipFactory(user=user, role="owner")
    client.force_login(user)
    assert client.get(f"/turns/{turn.pk}/").status_code == 404
    assert client.get(f"/turns/{turn.session_id}/").status_code == 404


def test_a_resumed_turn_keeps_its_earlier_model_calls_and_shows_the_wait_for_approval(client):
    from apps.conversations.turns.services import turn_resume
    from apps.policy.models import Approval
    from apps.policy.services import tool_rule_set
    from apps.tenancy.principal import Principal

    tenant = TenantFactory()
    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    tool_rule_set(tenant=tenant, actor=Actor.system("test"), tool_name="calculator", action="require_approval")
    agent = Agent.objects.get(tenant=tenant, name="assistant")
    session = conversations.session_create(tenant=tenant, agent=agent)
    _, turn = conversations.message_post(
        tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": "what is 6*7?"}]
    )
    admin = MembershipFactory(tenant=tenant, role="admin").user
    principal = Principal(tenant=tenant, role="admin", user=admin, scopes=("read", "write", "admin"))
    turn_resume(
        tenant=tenant,
        actor=principal.as_actor(),
        actor_role="admin",
        approval=Approval.objects.get(turn=turn),
        approve=True,
        reason="fine",
    )  # the resumed attempt runs inline here (eager tasks)
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    assert [c["step"] for c in turn.metadata["timings"]["model_calls"]] == [1, 2]  # both attempts' calls

    client.force_login(admin)
    page = client.get(f"/turns/{turn.pk}/").content.decode()
    assert "Approval: calculator" in page
    assert "Waiting for approval" in page
    assert page.count('class="wf-bar"') == 6  # queue, context, two model calls, the approval, the tool
