"""The Tenant pages in a real browser: an admin makes an API key (shown once, with a copy
button) and revokes it; invites someone by email, who opens the link signed in with that
address and joins (another account gets the 404 page); the audit filter narrows the log; the
usage chart draws from the page's data island, with an empty state before any turn; a member
sees none of the admin pages."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.tenancy.models import ApiKey, Membership
from apps.tenancy.principal import Actor
from apps.tenancy.services import audit_record
from tests.dashboard.browser import session_cookie_for
from tests.dashboard.tenantpages_data import agent_named, spent_turn
from tests.factories import TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_new_key_is_shown_once_with_a_copy_button_and_can_be_revoked(page, sign_in):
    _, tenant = sign_in("admin")
    page.goto("/keys/")
    expect(page.get_by_role("heading", name="No API keys yet")).to_be_visible()
    page.get_by_label("Name").fill("ci-pipeline")
    page.get_by_label("Write").uncheck()
    page.get_by_role("button", name="Create key").click()

    secret = page.locator("#new-key-value")
    expect(secret).to_have_text(re.compile(r"^ap_\w{8}\.\w+$"))
    plaintext = secret.inner_text()
    key = ApiKey.objects.get(tenant=tenant, name="ci-pipeline")
    assert ApiKey.objects.get_from_key(plaintext) == key
    assert key.scopes == ["read"]
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator(".toast")).to_have_text("Copied")
    row = page.locator(f"#key-{key.pk}")
    expect(row).to_contain_text("ci-pipeline")  # the list was refreshed with the new key
    expect(row.locator(".badge.active")).to_be_visible()

    page.reload()
    expect(page.locator("#new-key-value")).to_have_count(0)
    assert plaintext not in page.content()

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(row.locator(".badge.revoked")).to_be_visible()
    expect(page.locator(".toast").last).to_contain_text("revoked")
    key.refresh_from_db()
    assert key.revoked

    # At a phone's width the table scrolls inside its frame; the page never scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_an_invited_person_opens_the_link_signed_in_and_joins_and_nobody_else_can(page, sign_in, dashboard_server):
    _, tenant = sign_in("admin", tenant=TenantFactory(name="Acme Research"))
    page.goto("/members/")
    expect(page.get_by_role("heading", name="No pending invitations")).to_be_visible()
    page.get_by_label("Email").fill("Ana@Example.com")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Create invitation link").click()
    link = page.locator("#invite-link")
    expect(link).to_contain_text("/invite/inv_")
    expect(page.get_by_role("button", name="Copy link")).to_be_visible()
    expect(page.locator("#invitations")).to_contain_text("ana@example.com")
    url = link.inner_text()
    assert url.startswith(dashboard_server.url + "/invite/")

    # Not signed in: the sign-in page, which says which account to use, and back here after.
    page.context.clear_cookies()
    page.goto(url)
    expect(page.get_by_text("sign in with the account whose email address")).to_be_visible()

    # Another account: the one 404 page, and no membership.
    page.context.add_cookies(
        [session_cookie_for(UserFactory(email="mallory@example.com"), base_url=dashboard_server.url)]
    )
    response = page.goto(url)
    assert response.status == 404
    expect(page.get_by_role("heading")).to_have_text("Nothing here")

    ana = UserFactory(email="ana@example.com", username="ana")
    page.context.clear_cookies()
    page.context.add_cookies([session_cookie_for(ana, base_url=dashboard_server.url)])
    page.goto(url)
    expect(page.get_by_role("heading", name="Join Acme Research")).to_be_visible()
    expect(page.locator(".invite-facts")).to_contain_text("Viewer")
    page.get_by_role("button", name="Accept and join Acme Research").click()
    expect(page.locator(".flash.success")).to_contain_text("Welcome to Acme Research")
    expect(page.locator(".tenant-name")).to_contain_text("Acme Research")
    expect(page.locator(".who")).to_contain_text("Viewer")
    assert Membership.objects.get(tenant=tenant, user=ana).role == "viewer"


def test_the_audit_filter_narrows_the_log(page, sign_in):
    _, tenant = sign_in("admin")
    for who, action in (
        ("user:ana", "api_key.created"),
        ("user:bob", "api_key.revoked"),
        ("user:bob", "agent.created"),
    ):
        audit_record(tenant=tenant, actor=Actor(label=who), action=action)
    page.goto("/audit/")
    rows = page.locator("#audit-entries tbody tr")
    expect(rows).to_have_count(3)
    page.get_by_label("Actor").fill("bob")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    page.get_by_label("Action").select_option("agent.created")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("user:bob")
    page.get_by_label("To (UTC day)").fill("2020-01-01")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("heading", name="No entries match")).to_be_visible()


def test_usage_shows_an_empty_state_then_a_chart_and_tables_of_the_turns(page, sign_in):
    _, tenant = sign_in("viewer")
    page.goto("/usage/")
    expect(page.get_by_role("heading", name="No usage in the last 30 days")).to_be_visible()
    expect(page.locator("canvas")).to_have_count(0)

    writer, coder = agent_named(tenant, "writer"), agent_named(tenant, "coder")
    spent_turn(tenant, writer, days_ago=0, input_tokens=1200, output_tokens=300, cost="0.0400")
    spent_turn(tenant, writer, days_ago=3, input_tokens=800, output_tokens=200, cost="0.0200")
    spent_turn(tenant, coder, days_ago=1, input_tokens=400, output_tokens=100, cost="0.0100")
    page.reload()
    expect(page.locator("#usage-cost-chart canvas")).to_have_count(1)
    expect(page.locator("#usage-token-chart canvas")).to_have_count(1)
    expect(page.locator("#usage-cost-chart .u-legend")).to_contain_text("writer")
    expect(page.locator("#usage-total-cost")).to_have_text("$0.0700")
    agents = page.locator("#usage-by-agent tbody tr")
    expect(agents).to_have_count(2)
    expect(agents.first).to_contain_text("writer")
    expect(page.locator("#usage-per-day tbody tr")).to_have_count(3)

    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.locator("#usage-cost-chart canvas")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_member_sees_no_admin_pages_and_is_told_which_role_they_need(page, sign_in):
    sign_in("member")
    page.goto("/usage/")
    nav = page.locator(".sidebar nav")
    expect(nav.get_by_role("link", name="Usage")).to_be_visible()
    for label in ("API keys", "Members", "Audit log"):
        expect(nav.get_by_role("link", name=label)).to_have_count(0)
    response = page.goto("/keys/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="This page needs the Admin role")).to_be_visible()
    expect(page.get_by_role("button", name="Create key")).to_have_count(0)
