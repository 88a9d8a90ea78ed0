from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.conversations.conftest import agent, chat  # noqa: F401 - fixtures


@pytest.fixture
def in_ms():
    """`in_ms(seconds)`: Unix ms that many seconds from now (for atTimestamp)."""

    def make(seconds: float) -> int:
        return int((timezone.now() + dt.timedelta(seconds=seconds)).timestamp() * 1000)

    return make
