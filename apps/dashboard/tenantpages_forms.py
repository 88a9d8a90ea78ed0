"""What the Tenant pages (keys, members, audit, usage) share: the actor of a write, and how the
services' refusals reach the user.

The pages parse their forms with the API's own serializers and call the same services, so a
field error or a refusal here says exactly what the API would say.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from rest_framework.exceptions import APIException, ValidationError

from apps.core.ratelimit import client_address
from apps.tenancy.principal import Actor


def actor_of(request) -> Actor:
    """Who acts, for the audit log: the signed-in person, their address and the request id."""
    return request.principal.as_actor(ip=client_address(request), request_id=getattr(request, "request_id", ""))


def is_htmx(request) -> bool:
    return bool(request.headers.get("HX-Request"))


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """A serializer's or a service's ValidationError as {field: [messages]} ("form" for the rest)."""
    detail = exc.detail
    if isinstance(detail, dict):
        return {"form" if key == "non_field_errors" else key: _as_list(value) for key, value in detail.items()}
    return {"form": _as_list(detail)}


def _as_list(value) -> list[str]:
    if isinstance(value, list):
        return [" ".join(_as_list(item)) if isinstance(item, list | dict) else str(item) for item in value]
    if isinstance(value, dict):
        return [f"{key}: {' '.join(_as_list(item))}" for key, item in value.items()]
    return [str(value)]


def refusal(request, exc: APIException, *, back: str) -> HttpResponse:
    """A service said no (403, 404, 409): htmx gets the API's JSON error, which the frame shows
    as a toast; a plain form post gets the message as a flash on the page it came from."""
    message = " ".join(_as_list(exc.detail))
    if is_htmx(request):
        return JsonResponse(
            {"error": _ERRORS.get(exc.status_code, "Refused"), "message": message}, status=exc.status_code
        )
    messages.error(request, message)
    return redirect(back)


_ERRORS = {403: "Forbidden", 404: "Not found", 409: "Conflict", 400: "Invalid input"}


def toast_header(response: HttpResponse, message: str) -> HttpResponse:
    """Ask the frame (app.js) for a toast after an htmx swap."""
    response["HX-Trigger"] = json.dumps({"toast": message})
    return response
