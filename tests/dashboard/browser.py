"""Debian's chromium driven by Playwright, against a live daphne (tests/dashboard/conftest.py).

The browser is the system's /usr/bin/chromium (installed by `make test`), never Playwright's own
download. The flags keep it off this machine's closed network (no background requests, no
component updates) and working as root in CI.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.test import Client

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "var" / "test-screenshots"


def session_cookie_for(user, *, base_url: str) -> dict:
    """A signed-in session for `user`, as the browser cookie (the sign-in form has its own test)."""
    client = Client()
    client.force_login(user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}


def is_csp_violation(text: str) -> bool:
    return "Content Security Policy" in text or "Refused to" in text
