"""Query-parameter parsing that answers 400 naming the parameter, never a 500.

`django.utils.dateparse.parse_datetime` returns None for text that is not shaped like a date
but *raises* ValueError for a well-shaped impossible one (`2026-02-30T00:00:00Z`), so every
view that parses a query date goes through here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError

DATETIME_HINT = "Use an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z."


def query_datetime(params: Mapping[str, str], name: str) -> dt.datetime | None:
    """The datetime in `params[name]` in UTC, None when absent; naive values are taken as UTC."""
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        raise ValidationError({name: [DATETIME_HINT]})
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    try:
        # In UTC: PostgreSQL refuses offsets Python accepts (up to ±24 h), e.g. `-19:12`.
        return value.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable instant
        raise ValidationError({name: [DATETIME_HINT]}) from None


_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # visible ASCII, as in the IETF draft's examples


def idempotency_key(headers: Mapping[str, str]) -> str:
    """The request's `Idempotency-Key` header, "" when absent; 400 when it is not 1-128 visible ASCII."""
    raw = headers.get("Idempotency-Key")
    if raw in (None, ""):
        return ""
    if not _IDEMPOTENCY_KEY.match(raw):
        raise ValidationError({"Idempotency-Key": ["1 to 128 visible ASCII characters."]})
    return raw
