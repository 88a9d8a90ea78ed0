"""Cross-cutting HTTP behaviour: request ids, JSON errors, the body cap, CORS preflight."""

from __future__ import annotations

import logging
import re
import uuid

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from apps.core.errors import is_api_path, json_error
from apps.core.logging import request_id_var

logger = logging.getLogger("apps.request")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UNAVAILABLE = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)


class RequestIdMiddleware:
    """Takes a sane X-Request-ID from the client or makes one; logs and the response carry it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _CLIENT_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class ApiErrorMiddleware:
    """Whatever escapes a view under /api/ becomes a JSON 500 (or 503 when a backing service is
    down), logged with its traceback; the client never sees a stack trace or an HTML page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return None
        if isinstance(exception, _UNAVAILABLE) or (
            isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
        ):
            logger.error("backing service unavailable: %s", exception)
            return json_error(
                503, "Service unavailable", "A backing service (database or Redis) is unreachable; retry shortly."
            )
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "Internal server error", "The error was logged; retry later or report it.")


# Uploads of attachments may be larger than any other body: ATTACHMENT_MAX_BYTES in base64
# (4/3) plus room for the multipart or JSON framing. The view checks the file's own size.
_UPLOAD_ROUTE = re.compile(r"^/api/sessions/[^/]+/attachments/?$")
UPLOAD_OVERHEAD_BYTES = 64 * 1024


def body_limit_for(request) -> tuple[int, str]:
    """(the body cap of this request, the setting that sets it)."""
    if request.method == "POST" and _UPLOAD_ROUTE.match(request.path_info):
        upload_cap = settings.ATTACHMENT_MAX_BYTES * 4 // 3 + UPLOAD_OVERHEAD_BYTES
        return max(settings.MAX_BODY_BYTES, upload_cap), "ATTACHMENT_MAX_BYTES"
    return settings.MAX_BODY_BYTES, "MAX_BODY_BYTES"


class BodySizeLimitMiddleware:
    """Refuses a declared body over MAX_BODY_BYTES before anything reads it (413); the
    attachment upload route has its own, larger cap (body_limit_for).

    Bodies without a Content-Length are capped when read, through DATA_UPLOAD_MAX_MEMORY_SIZE.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return json_error(400, "Bad request", "Content-Length is not a number.")
        limit, setting = body_limit_for(request)
        if length > limit:
            return json_error(
                413,
                "Payload too large",
                f"Request body is {length} bytes; the limit is {limit} bytes ({setting}).",
            )
        return self.get_response(request)


class QueryNulByteMiddleware:
    """A NUL byte in the query string is a 400 for every route: PostgreSQL text cannot hold one,
    so any filter that reaches a query with it would be a 500, and no real value contains one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists()):
            return json_error(400, "Bad request", "The query string contains a NUL byte (%00); remove it.")
        return self.get_response(request)


class PreflightNoContentMiddleware:
    """django-cors-headers answers a preflight with 200 and no body; the contract is 204."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        is_preflight = request.method == "OPTIONS" and "access-control-request-method" in request.headers
        if is_preflight and response.status_code == 200 and not response.content:
            response.status_code = 204
            if response.has_header("Content-Length"):
                del response["Content-Length"]
        return response
