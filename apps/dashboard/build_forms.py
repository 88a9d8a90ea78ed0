"""Helpers the Build pages share (agents, providers, skills, policy, workspace): who acts, and
the services' errors as inline form errors.

The pages call the same services as the API, which raise DRF exceptions (`ValidationError`
with `{field: [message]}`, `Conflict`, `NotFound`, a workspace error with its status). A page
shows them next to the fields they name, or above the form, instead of a JSON body.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import APIException, ValidationError

from apps.core.ratelimit import client_address
from apps.tenancy.principal import Actor

FORM = "form"  # the key of errors that name no field (shown above the form)


def actor_for(request) -> Actor:
    """The audit log's actor for a dashboard write: the signed-in user, their address, the request id."""
    return request.principal.as_actor(ip=client_address(request), request_id=getattr(request, "request_id", ""))


def _messages(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [f"{key}: {m}" for key, value in detail.items() for m in _messages(value)]
    if isinstance(detail, list | tuple):
        return [m for item in detail for m in _messages(item)]
    return [str(detail)]


def _flatten(detail: Any, errors: dict[str, list[str]], key: str) -> None:
    """Nested errors (`model_policy.max_cost_usd`, `options.headers`) land on their leaf field,
    which is what the form names; a list of strings is that field's messages."""
    if isinstance(detail, dict):
        for sub, value in detail.items():
            # `config.url` becomes `config_url`: a name a template can look up.
            _flatten(value, errors, FORM if sub == "non_field_errors" else str(sub).replace(".", "_"))
        return
    errors.setdefault(key, []).extend(_messages(detail))


def form_errors(exc: APIException) -> dict[str, list[str]]:
    """`{field: [message, ...]}` (and `form` for the rest) from what a service raised."""
    errors: dict[str, list[str]] = {}
    if isinstance(exc, ValidationError):
        _flatten(exc.detail, errors, FORM)
    else:
        errors[FORM] = _messages(exc.detail)
    return errors


def error_status(exc: APIException) -> int:
    """The status a re-rendered form answers with: 400 for bad input, else the API's own code."""
    return getattr(exc, "status_code", 400) or 400


def render_form(
    request, template: str, context: dict, *, errors: dict | None = None, status: int = 200
) -> HttpResponse:
    context = {**context, "errors": errors or {}}
    return render(request, template, context, status=status)


def is_htmx(request) -> bool:
    return bool(request.headers.get("HX-Request"))


def checked(post, name: str) -> bool:
    """A checkbox's state in a POST's data (absent means unchecked)."""
    return post.get(name) in ("on", "true", "1", "yes")


def blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None
