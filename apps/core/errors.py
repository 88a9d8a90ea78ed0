"""One JSON error shape for the whole API: `{"error": summary, "message": detail, "fields"?}`."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from apps.core.constants import UNAUTHORIZED_MESSAGE

logger = logging.getLogger(__name__)


def error_body(error: str, message: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error}
    if message:
        body["message"] = message
    body.update(extra)
    return body


def json_error(status_code: int, error: str, message: str | None = None, **extra: Any) -> JsonResponse:
    return JsonResponse(error_body(error, message, **extra), status=status_code)


class InvalidPathId(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_id"

    def __init__(self, label: str):
        super().__init__(f"Invalid {label} ID format")


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class NotConfigured(exceptions.APIException):
    """Well-formed input the tenant's setup cannot serve (no enabled agent, no usable model)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The tenant is not configured for this."
    default_code = "not_configured"


def _flatten(detail: Any) -> Any:
    """DRF's ErrorDetail lists become plain strings and lists of strings."""
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _summary_for(exc: exceptions.APIException) -> tuple[str, str | None]:
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return "Unauthorized", UNAUTHORIZED_MESSAGE
    if isinstance(exc, exceptions.PermissionDenied):
        return "Forbidden", str(exc.detail)
    if isinstance(exc, exceptions.NotFound):
        return "Not found", None if exc.detail == exceptions.NotFound.default_detail else str(exc.detail)
    if isinstance(exc, exceptions.ParseError):
        return "Invalid JSON body", str(exc.detail)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return "Method not allowed", str(exc.detail)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return "Unsupported media type", f"{exc.detail} Send application/json."
    if isinstance(exc, exceptions.NotAcceptable):
        return "Not acceptable", str(exc.detail)
    if isinstance(exc, exceptions.Throttled):
        return "Too many requests", "Rate limited; retry after the time in `Retry-After`."
    if isinstance(exc, InvalidPathId):
        return str(exc.detail), "Path ids are 1-128 letters, digits, '_' or '-'."
    if isinstance(exc, PayloadTooLarge):
        return "Payload too large", str(exc.detail)
    if isinstance(exc, Conflict):
        return "Conflict", str(exc.detail)
    if isinstance(exc, NotConfigured):
        return "Not configured", str(exc.detail)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return str(detail or exc.default_detail), None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    # Imported here: rest_framework.views loads the authentication classes, which import us.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: ApiErrorMiddleware answers a JSON 500 and logs it

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if isinstance(fields, list):
            fields = {"non_field_errors": fields}
        response.data = error_body("Validation failed", "Check the fields listed in `fields`.", fields=fields)
        return response

    error, message = _summary_for(exc)
    if message is None and isinstance(exc, exceptions.NotFound):
        # Every error has a message; a bare 404 says what was not found without telling
        # whether it exists in another tenant.
        message = f"No object at {context['request'].path} in your tenant."
    response.data = error_body(error, message)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # DRF turns a missing-credentials 401 into 403 unless a scheme is advertised.
        response.status_code = status.HTTP_401_UNAUTHORIZED
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def not_found_view(request, exception=None):
    if is_api_path(request.path):
        return json_error(404, "Not found", f"No route or object at {request.path}.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error_view(request):
    if is_api_path(request.path):
        return json_error(500, "Internal server error", "The error was logged; retry later or report it.")
    from django.views.defaults import server_error

    return server_error(request)


def bad_request_view(request, exception=None):
    if is_api_path(request.path):
        return json_error(400, "Bad request", "The request could not be read; check its URL, headers and body.")
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def permission_denied_view(request, exception=None):
    if is_api_path(request.path):
        return json_error(403, "Forbidden", "Your credentials do not allow this.")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)
