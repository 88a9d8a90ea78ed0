from __future__ import annotations

import pytest

from tests.events import live


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker):
    """A live daphne on a loopback port, against the test database and Redis (tests/events/live.py)."""
    yield from live.serve_daphne()
