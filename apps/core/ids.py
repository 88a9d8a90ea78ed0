"""Identifiers: UUIDv7 primary keys and the path-id format every API route accepts."""

from __future__ import annotations

import re
import uuid

import uuid6

# Path ids in URLs must match this; anything else is a 400 before any lookup.
PATH_ID_PATTERN = r"[a-zA-Z0-9_-]{1,128}"
PATH_ID_RE = re.compile(rf"^{PATH_ID_PATTERN}$")


def new_id() -> uuid.UUID:
    """A time-ordered UUID (v7): sorts by creation and keeps B-tree inserts local."""
    return uuid.UUID(str(uuid6.uuid7()))


def is_valid_path_id(value: str) -> bool:
    return bool(PATH_ID_RE.match(value or ""))


def parse_uuid(value: str) -> uuid.UUID | None:
    """A well-formed id that is not one of ours is simply not found (404), never a 500."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
