from __future__ import annotations

from tests.conversations.conftest import agent, chat  # noqa: F401 - fixtures
