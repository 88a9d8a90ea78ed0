"""Fixtures for the dashboard's browser tests: a live daphne serving the dashboard (static files
from the app folders), one chromium for the package, a fresh browser context per test, and a
screenshot in var/test-screenshots/ when a test fails.

Every page a test opens is also checked for what a user would see break: an uncaught script
error or a Content-Security-Policy violation fails the test.
"""

from __future__ import annotations

import contextlib
import os
import re

import pytest

from tests.dashboard import browser as chromium
from tests.events import live
from tests.factories import PASSWORD, MembershipFactory, TenantFactory, UserFactory  # noqa: F401 - PASSWORD for tests


@pytest.fixture(scope="package")
def dashboard_server(django_db_setup, django_db_blocker):
    yield from live.serve_daphne(
        {"STATIC_FROM_APP_FOLDERS": "true", "EMBEDDING_BACKEND": "hashing", "OUTBOUND_ALLOW_LOOPBACK": "true"}
    )


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread, so Django's ORM would refuse to
    # run in the test body ("SynchronousOnlyOperation"); the test code is sync, so that is safe.
    # Playwright's documentation gives this setting for Django.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch(sync_playwright)
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _launch(sync_playwright):
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=chromium.CHROMIUM, args=chromium.CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class BrowserProblems:
    def __init__(self):
        self.errors: list[str] = []

    def serious(self) -> list[str]:
        return list(self.errors)


@pytest.fixture
def page(browser, dashboard_server, request):
    """A page in a fresh context (no cookies), 1280x800, with a 10 s default timeout."""
    context = browser.new_context(base_url=dashboard_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    problems = BrowserProblems()
    tab.on("pageerror", lambda exc: problems.errors.append(f"uncaught: {exc}"))
    tab.on(
        "console",
        lambda message: (
            problems.errors.append(f"console: {message.text}")
            if message.type == "error" and chromium.is_csp_violation(message.text)
            else None
        ),
    )
    yield tab
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        chromium.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)[-150:]
        with contextlib.suppress(Exception):  # a screenshot must not hide the real failure
            tab.screenshot(path=str(chromium.SCREENSHOTS / f"{name}.png"), full_page=True)
    context.close()
    assert not problems.serious(), f"the browser reported: {problems.serious()}"


@pytest.fixture
def sign_in(page, dashboard_server):
    """sign_in(role="member", tenant=None, user=None) -> (user, tenant): a signed-in browser."""

    def do(role: str = "member", *, tenant=None, user=None):
        tenant = tenant or TenantFactory()
        user = user or UserFactory()
        MembershipFactory(tenant=tenant, user=user, role=role)
        page.context.add_cookies([chromium.session_cookie_for(user, base_url=dashboard_server.url)])
        return user, tenant

    return do
