"""The approvals inbox (`/approvals/`): a gated call appears live, is decided from the page with a
reason, and moves to the history; a viewer follows but cannot decide; the server refuses too."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.agents.models import Agent
from apps.agents.services import tenant_bootstrap_agents
from apps.conversations import services as conversations
from apps.conversations.models import Turn
from apps.policy.models import Approval
from apps.policy.services import tool_rule_set
from apps.tenancy.principal import Actor
from tests.factories import MembershipFactory, TenantFactory

pytestmark = [pytest.mark.django_db(transaction=True)]

ACTOR = Actor.system("test")


def gated_turn(tenant, text: str = "what is 6*7?") -> Approval:
    """A turn that parked on the calculator, whose rule says "require approval"."""
    if not Agent.objects.filter(tenant=tenant).exists():
        tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
        tool_rule_set(tenant=tenant, actor=ACTOR, tool_name="calculator", action="require_approval")
    agent = Agent.objects.get(tenant=tenant, name="assistant")
    session = conversations.session_create(tenant=tenant, agent=agent, title="Sums")
    _, turn = conversations.message_post(
        tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": text}]
    )
    turn.refresh_from_db()
    assert turn.status == Turn.Status.WAITING_APPROVAL, turn.error
    return Approval.objects.get(turn=turn)


@pytest.mark.e2e
def test_a_gated_call_appears_live_and_an_admin_denies_it_with_a_reason(page, sign_in):
    _, tenant = sign_in("admin")
    page.goto("/approvals/")
    expect(page.get_by_role("heading", name="Nothing waits for you")).to_be_visible()
    expect(page.locator("#approvals-live")).to_have_text("Live")

    approval = gated_turn(tenant)  # published on the tenant's stream: the list refreshes itself
    card = page.locator(f'[data-approval-id="{approval.pk}"]')
    expect(card).to_contain_text("calculator")
    expect(card).to_contain_text("6*7")
    expect(card.get_by_role("link", name="Sums")).to_have_attribute("href", f"/chat/{approval.turn.session_id}/")
    expect(page.get_by_test_id("pending-count")).to_have_text("1")

    card.get_by_label("Reason").fill("not today")
    card.get_by_role("button", name="Deny").click()
    expect(page.locator(".toast")).to_contain_text("Denied: calculator")
    expect(card).to_have_count(0)
    history = page.get_by_test_id("history")
    expect(history).to_contain_text("Denied")
    expect(history).to_contain_text("not today")
    approval.refresh_from_db()
    assert (approval.status, approval.decision_reason) == (Approval.Status.DENIED, "not today")


@pytest.mark.e2e
def test_a_viewer_sees_pending_approvals_but_no_buttons(page, sign_in):
    _, tenant = sign_in("viewer")
    gated_turn(tenant)
    page.goto("/approvals/")
    expect(page.locator(".approval-card")).to_contain_text("calculator")
    expect(page.get_by_text("Deciding approvals needs the Admin role")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Deny")).to_have_count(0)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_deciding_needs_the_tenants_approval_role_on_the_server(client):
    tenant = TenantFactory()
    approval = gated_turn(tenant)
    url = f"/approvals/{approval.pk}/decide/"
    for role in ("viewer", "member"):  # the approval role is admin by default
        client.force_login(MembershipFactory(tenant=tenant, role=role).user)
        assert client.post(url, {"decision": "approve"}).status_code == 403, role
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING

    tenant.settings = {**(tenant.settings or {}), "approval_role": "member"}
    tenant.save(update_fields=["settings"])
    member = MembershipFactory(tenant=tenant, role="member").user
    client.force_login(member)
    response = client.post(url, {"decision": "approve", "reason": "fine"})
    assert response.status_code == 302
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by, approval.decision_reason) == (
        Approval.Status.APPROVED,
        member,
        "fine",
    )
    resumed = Turn.objects.get(pk=approval.turn_id)  # resumed (inline in this process) and ran the call
    assert resumed.status == Turn.Status.COMPLETED, resumed.error
    assert "42" in resumed.output_message.text

    # Deciding again: the page says it is closed already, nothing changes.
    response = client.post(url, {"decision": "deny"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "already approved" in response.content.decode()


def test_the_inbox_shows_only_this_tenants_approvals(client):
    mine, theirs = TenantFactory(), TenantFactory()
    gated_turn(theirs, "what is 1+1?")
    client.force_login(MembershipFactory(tenant=mine, role="owner").user)
    page = client.get("/approvals/list/").content.decode()
    assert "Nothing waits for you" in page
    assert "1+1" not in page
