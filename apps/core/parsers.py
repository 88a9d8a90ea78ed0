"""JSON input with a nesting limit.

`json.loads` recurses once per nesting level, so a body of ~200k `[` raises RecursionError,
which is not a ValueError: DRF's parser let it through and the client got a 500. The decoder
is wrapped so such input is a 400, and documents nested deeper than JSON_MAX_DEPTH are refused
even when Python could parse them, since later code (serializers, redaction, JSONB encoding)
walks them recursively too.
"""

from __future__ import annotations

import codecs
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings
from rest_framework.utils import json


class JSONTooDeep(ValueError):
    pass


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative, so checking a deep document cannot itself overflow the stack."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads_bounded(text: str | bytes, *, max_depth: int | None = None, strict: bool = False) -> Any:
    """json.loads that raises ValueError (JSONTooDeep) instead of RecursionError or deep data."""
    limit = settings.JSON_MAX_DEPTH if max_depth is None else max_depth
    try:
        value = json.loads(text, parse_constant=json.strict_constant if strict else None)
    except RecursionError:
        raise JSONTooDeep(f"JSON nested deeper than {limit} levels.") from None
    # A document cannot be deeper than its count of openers: the walk runs only when it could be.
    openers = text.count(b"[") + text.count(b"{") if isinstance(text, bytes) else text.count("[") + text.count("{")
    if openers > limit and _depth_exceeds(value, limit):
        raise JSONTooDeep(f"JSON nested deeper than {limit} levels (JSON_MAX_DEPTH).")
    return value


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser with the nesting limit; every error is a ParseError (400)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            text = codecs.decode(raw, encoding)
            return loads_bounded(text, strict=api_settings.STRICT_JSON)
        except (ValueError, LookupError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
