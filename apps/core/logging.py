"""Request ids in every log line, and secrets out of every log line."""

from __future__ import annotations

import contextvars
import logging
import logging.config
import threading

from apps.core.redaction import redact_text

# The request id is per-request context for logs only; tenants are never kept here (DESIGN.md).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


# The attributes every LogRecord has; anything else on a record came from `extra=` and is printed
# by the JSON formatter, so it is redacted too.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "request_id",
}
_guard = threading.local()


class RedactingFilter(logging.Filter):
    """Replaces secrets in a record before any handler writes it: the message after `%`
    formatting (a secret is as often in the args as in the format), a traceback's text, a stack,
    and string values passed with `extra=`.

    The record is changed in place, so the handlers after the first one (a second handler,
    pytest's caplog) see the redacted record; the thread remembers the last record it redacted,
    so they do not pay again (no mark on the record: the JSON formatter would print it). Cheap
    for ordinary lines: redaction's prefilter skips text that holds no token-like run, keyword or
    URL. It never recurses: while it redacts, records logged from inside redaction pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_guard, "active", False) or getattr(_guard, "last", None) is record:
            return True
        _guard.active = True
        try:
            self._redact(record)
        except Exception:  # noqa: BLE001 - a log line must never be lost to its own redaction
            record.msg, record.args = "[log record withheld: redaction failed]", None
        finally:
            _guard.active = False
            _guard.last = record
        return True

    @staticmethod
    def _redact(record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: the handler reports it as usual
            return
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatter.format() uses exc_text when it is set, so the traceback printed is this one.
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, redact_text(value))


_FILTER = RedactingFilter()


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add the redacting filter to every handler of `logger` (default: of every logger), once.
    For handlers made outside LOGGING: Django's defaults, Celery's worker handlers."""
    loggers = [logger] if logger is not None else [logging.getLogger(), *_all_loggers()]
    for each in loggers:
        for handler in each.handlers:
            if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
                handler.addFilter(_FILTER)


def _all_loggers() -> list[logging.Logger]:
    return [item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)]


def configure_logging(config: dict) -> None:
    """LOGGING_CONFIG: apply settings.LOGGING, then put the filter on every handler there is,
    Django's own defaults (mail_admins) included; LOGGING names it on its handlers as well."""
    logging.config.dictConfig(config)
    install_redaction()
