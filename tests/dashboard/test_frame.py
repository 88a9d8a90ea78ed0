"""The dashboard's frame in a real browser: signing in and out, the password, the tenant
switcher, the security headers, the error pages, and the layout at a phone's width."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import PASSWORD
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_sign_in_form_signs_in_and_a_wrong_password_says_so(page, dashboard_server):
    tenant = TenantFactory(name="Acme Research")
    user = UserFactory(username="ada")
    MembershipFactory(tenant=tenant, user=user, role="member")

    page.goto("/")
    expect(page).to_have_url(f"{dashboard_server.url}/login/?next=/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page.get_by_label("Username")).to_have_value("ada")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".tenant-name")).to_contain_text("Acme Research")
    expect(page.locator(".who")).to_contain_text("ada")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{dashboard_server.url}/login/")
    page.goto("/account/password/")
    expect(page).to_have_url(f"{dashboard_server.url}/login/?next=/account/password/")


def test_changing_the_password_checks_the_old_one_and_keeps_this_browser_signed_in(page, sign_in):
    user, _ = sign_in("viewer")
    page.goto("/account/password/")
    page.get_by_label("Old password").fill("wrong")
    page.get_by_label("New password", exact=True).fill("a much longer passphrase 42")
    page.get_by_label("New password confirmation").fill("a much longer passphrase 42")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".field-error").first).to_contain_text("old password was entered incorrectly")

    page.get_by_label("Old password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("a much longer passphrase 42")
    page.get_by_label("New password confirmation").fill("a much longer passphrase 42")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".flash.success")).to_contain_text("Password changed")
    user.refresh_from_db()
    assert user.check_password("a much longer passphrase 42")
    page.goto("/account/password/")
    expect(page.get_by_role("button", name="Change password")).to_be_visible()  # still signed in


def test_a_user_in_two_tenants_switches_between_them(page, sign_in):
    first = TenantFactory(name="Alpha Corp")
    second = TenantFactory(name="Beta Labs")
    user, _ = sign_in("member", tenant=first)
    MembershipFactory(tenant=second, user=user, role="viewer")

    page.goto("/account/password/")
    switcher = page.get_by_label("Tenant")
    expect(switcher.locator("option:checked")).to_have_text("Alpha Corp")
    switcher.select_option(label="Beta Labs")  # submits on change
    expect(page.locator(".flash.success")).to_contain_text("Now working in Beta Labs")
    expect(page.get_by_label("Tenant").locator("option:checked")).to_have_text("Beta Labs")
    expect(page.locator(".who")).to_contain_text("Viewer")


def test_a_tenant_the_user_is_not_in_cannot_be_switched_to(page, sign_in, dashboard_server):
    sign_in("owner")
    stranger = TenantFactory(name="Somebody Else")
    page.goto("/account/password/")
    token = page.context.cookies()
    csrf = next(c["value"] for c in token if c["name"] == "csrftoken")
    response = page.request.post(
        "/switch-tenant/",
        form={"tenant": str(stranger.pk)},
        headers={"X-CSRFToken": csrf, "Referer": dashboard_server.url + "/"},
    )
    assert response.status == 404


def test_a_user_in_no_tenant_is_told_what_to_do(page, sign_in, dashboard_server):
    user = UserFactory()
    from tests.dashboard.browser import session_cookie_for

    page.context.add_cookies([session_cookie_for(user, base_url=dashboard_server.url)])
    page.goto("/")
    expect(page.get_by_role("heading")).to_contain_text("not in an organization yet")
    expect(page.get_by_text("invitation link")).to_be_visible()


def test_every_page_carries_a_self_only_content_security_policy(dashboard_server, page, sign_in):
    for path in ("/login/", "/admin/login/", "/api/docs/", "/no-such-page/"):
        response = httpx.get(dashboard_server.url + path)
        policy = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy, path
        assert "script-src 'self'" in policy, path
        assert "frame-ancestors 'none'" in policy, path
    # The admin and the API manual work under it: the page fixture fails on any CSP violation.
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("agentplatform API")
    page.goto("/admin/login/")
    expect(page.locator("#login-form")).to_be_visible()


def test_an_unknown_page_is_a_friendly_404(page, sign_in):
    sign_in("member")
    response = page.goto("/definitely/not/here/")
    assert response.status == 404
    expect(page.get_by_role("heading")).to_have_text("Nothing here")
    expect(page.get_by_role("link", name="Go to the dashboard")).to_be_visible()


def test_at_a_phones_width_the_sidebar_opens_from_the_menu_button(page, sign_in):
    sign_in("member")
    page.goto("/account/password/")
    expect(page.get_by_role("button", name="Open menu")).to_be_hidden()  # a desktop: no drawer
    expect(page.get_by_role("button", name="Close menu")).to_be_hidden()
    page.set_viewport_size({"width": 390, "height": 844})
    sidebar = page.locator("#sidebar")
    expect(sidebar).not_to_be_in_viewport()
    page.get_by_role("button", name="Open menu").click()
    expect(sidebar).to_be_in_viewport()
    page.keyboard.press("Escape")
    expect(sidebar).not_to_be_in_viewport()
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
