"""The two questions lower apps ask about chat sessions and turns, which conversations owns.

Memory and events store session and turn ids, and never import `ChatSession` or `Turn`: those
live in conversations, the top layer (docs/architecture.md, "Import map"). What they still
need to know is whether a tenant owns a session id (a memory API call, a `/ws` subscription,
a session's SSE stream) and how many turns each tenant has active (`system_status`).

This module is the port they ask through; conversations answers it, registering
`apps.conversations.directory` from its `AppConfig.ready()`. It is the one rule for a lower app
that needs a higher app's table (not `apps.get_model`, not a dotted path in the settings): a
named interface here, one implementation there. An app that asks before conversations is
ready gets a clear error, not a silent "no".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured


class SessionDirectory(Protocol):
    def owned_session_ids(self, *, tenant_id, session_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """The ids among `session_ids` that are sessions of the tenant."""

    def active_turn_counts(self, *, tenant_ids: Iterable) -> dict[str, int]:
        """Queued, running and waiting turns per tenant (every tenant asked for, 0 for none)."""


_directory: SessionDirectory | None = None


def session_directory_register(directory: SessionDirectory) -> None:
    global _directory  # set once, when the app registry is ready
    _directory = directory


def session_directory() -> SessionDirectory:
    if _directory is None:
        raise ImproperlyConfigured("No session directory: apps.conversations must be in INSTALLED_APPS.")
    return _directory


def session_ids_owned(*, tenant_id, session_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    ids = [session_id for session_id in session_ids if session_id is not None]
    return session_directory().owned_session_ids(tenant_id=tenant_id, session_ids=ids) if ids else set()


def session_owned(*, tenant_id, session_id: uuid.UUID | None) -> bool:
    return session_id is not None and session_id in session_ids_owned(tenant_id=tenant_id, session_ids=[session_id])


def active_turn_counts(*, tenant_ids: Iterable) -> dict[str, int]:
    return session_directory().active_turn_counts(tenant_ids=tenant_ids)
