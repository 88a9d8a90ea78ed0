"""Request ids in every log line."""

from __future__ import annotations

import contextvars
import logging

# The request id is per-request context for logs only; tenants are never kept here (DESIGN.md).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
