"""Validation shared by the services, the API and the admin: what a provider option, a model
policy or an agent field may be. Raises DRF ValidationErrors (`{field: [message]}`), which the
API turns into 400s naming the fields and the admin shows on its forms."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_slug
from rest_framework.exceptions import ValidationError

from apps.agents import selectors
from apps.agents.models import CatalogModel
from apps.core import outbound
from apps.tenancy.models import Tenant

ROLES = ("guide", "specialist", "vision")
POLICY_KEYS = ("require_tools", "require_vision", "max_cost_usd", "preferred_models")
OPTION_KEYS = ("timeout_seconds", "max_retries", "headers", "organization", "stream_usage")
# Options are stored in clear; secrets belong in the encrypted api_key, so refuse look-alikes.
_SECRET_HEADER_NAMES = {"authorization", "x-api-key", "api-key", "proxy-authorization"}


def clean_slug(value: str, *, field: str) -> str:
    value = (value or "").strip()
    try:
        validate_slug(value)
    except DjangoValidationError as exc:
        raise ValidationError({field: ["Use letters, digits, hyphens and underscores only."]}) from exc
    if len(value) > 64:
        raise ValidationError({field: ["At most 64 characters."]})
    return value


def clean_base_url(value: str, *, restricted: bool = True) -> str:
    """http(s) with a host, that the outbound policy lets a tenant reach (`restricted=False`:
    an operator's URL, e.g. a platform provider's, which the policy does not govern). Laxer than Django's
    URLValidator on purpose: in-cluster hostnames without a dot (`http://ollama:11434`) are the
    common case for self-hosted models (the operator allows them with OUTBOUND_ALLOW_HOSTS).

    The check here is for a clear 400; the transport checks again at every connection, since
    what a name resolves to may change after it was saved."""
    value = (value or "").strip()
    if not value:
        return ""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or len(value) > 500:
        raise ValidationError({"base_url": ["Give an http(s) URL, e.g. https://models.example.com/v1."]})
    if not restricted:
        return value.rstrip("/")
    try:
        outbound.OutboundPolicy.from_settings().check_destination(value)
    except outbound.OutboundBlocked as exc:
        raise ValidationError({"base_url": [f"{exc} ({outbound.ALLOW_LIST_HINT})."]}) from exc
    return value.rstrip("/")


def clean_provider_options(options: Any, *, allow_auth_headers: bool = False) -> dict[str, Any]:
    """`allow_auth_headers`: platform providers (operator-only rows, never shown to tenants) may
    carry an authentication header, e.g. for a gateway in front of the model server."""
    if options in (None, ""):
        return {}
    if not isinstance(options, dict):
        raise ValidationError({"options": ['An object, e.g. {"timeout_seconds": 30}.']})
    errors: dict[str, list[str]] = {}
    for key in sorted(set(options) - set(OPTION_KEYS)):
        errors[key] = [f"Unknown option. Known: {', '.join(OPTION_KEYS)}. Keys go in api_key."]
    clean: dict[str, Any] = {}
    if "timeout_seconds" in options:
        value = options["timeout_seconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 600:
            errors["timeout_seconds"] = ["A number of seconds between 0 and 600."]
        else:
            clean["timeout_seconds"] = value
    if "max_retries" in options:
        value = options["max_retries"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
            errors["max_retries"] = ["An integer from 0 to 10."]
        else:
            clean["max_retries"] = value
    if "headers" in options:
        headers = options["headers"]
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            errors["headers"] = ["An object of header names to string values."]
        elif not allow_auth_headers and _SECRET_HEADER_NAMES & {str(k).lower() for k in headers}:
            errors["headers"] = ["Authentication headers are secrets: set them through api_key instead."]
        else:
            clean["headers"] = {str(k): v for k, v in headers.items()}
    if "organization" in options:
        if not isinstance(options["organization"], str):
            errors["organization"] = ["A string."]
        else:
            clean["organization"] = options["organization"]
    if "stream_usage" in options:
        if not isinstance(options["stream_usage"], bool):
            errors["stream_usage"] = ["true or false (false for servers that reject stream_options)."]
        else:
            clean["stream_usage"] = options["stream_usage"]
    if errors:
        raise ValidationError({"options": errors})
    return clean


def clean_model_policy(*, tenant: Tenant, policy: Any) -> dict[str, Any]:
    """`{require_tools: bool, require_vision: bool, max_cost_usd: number|null, preferred_models:
    [ref]}`; unknown keys are refused so a typo does not silently do nothing."""
    if policy in (None, ""):
        return {}
    if not isinstance(policy, dict):
        raise ValidationError({"model_policy": ["An object with " + ", ".join(POLICY_KEYS) + "."]})
    errors: dict[str, list[str]] = {key: ["Unknown key."] for key in sorted(set(policy) - set(POLICY_KEYS))}
    clean: dict[str, Any] = {}
    for key in ("require_tools", "require_vision"):
        if key in policy:
            if not isinstance(policy[key], bool):
                errors[key] = ["true or false."]
            else:
                clean[key] = policy[key]
    if "max_cost_usd" in policy:
        value = policy["max_cost_usd"]
        if value is None:
            clean["max_cost_usd"] = None
        else:
            try:
                amount = Decimal(str(value))
            except InvalidOperation:
                amount = Decimal(-1)
            if isinstance(value, bool) or not amount.is_finite() or amount < 0:
                errors["max_cost_usd"] = ["A non-negative number of US dollars per turn, or null."]
            else:
                clean["max_cost_usd"] = float(amount)
    if "preferred_models" in policy:
        refs = policy["preferred_models"]
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            errors["preferred_models"] = ['A list of model references, e.g. ["openai/gpt-4o-mini"].']
        else:
            unknown = [r for r in refs if selectors.catalog_model_by_ref(tenant=tenant, ref=r) is None]
            if unknown:
                errors["preferred_models"] = [f"Not in your model catalog: {', '.join(unknown)}."]
            else:
                clean["preferred_models"] = list(dict.fromkeys(refs))
    if errors:
        raise ValidationError({"model_policy": errors})
    return clean


def check_model_belongs(*, tenant: Tenant, model: CatalogModel | None, field: str) -> None:
    if model is not None and model.tenant_id != tenant.pk:
        raise ValidationError({field: ["Not in your model catalog."]})


def model_ref_resolve(*, tenant: Tenant, ref: str, field: str = "model") -> CatalogModel:
    """The tenant's catalog entry for `<provider>/<model>`, or a validation error naming `field`."""
    model = selectors.catalog_model_by_ref(tenant=tenant, ref=ref)
    if model is None:
        raise ValidationError(
            {field: [f"'{ref}' is not in your model catalog; see GET /api/models/available for references."]}
        )
    return model


def clean_agent_fields(fields: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    if "max_steps" in fields and not (isinstance(fields["max_steps"], int) and 1 <= fields["max_steps"] <= 100):
        errors["max_steps"] = ["An integer from 1 to 100."]
    temperature = fields.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 2):
        errors["temperature"] = ["A number from 0 to 2, or null for the model's default."]
    max_output = fields.get("max_output_tokens")
    if max_output is not None and not (isinstance(max_output, int) and 1 <= max_output <= 1_000_000):
        errors["max_output_tokens"] = ["A positive integer, or null."]
    if "enabled_tools" in fields:
        tools = fields["enabled_tools"]
        if not isinstance(tools, list) or not all(isinstance(t, str) and t.strip() for t in tools):
            errors["enabled_tools"] = ["A list of tool names."]
        else:
            fields["enabled_tools"] = list(dict.fromkeys(t.strip() for t in tools))
    if errors:
        raise ValidationError(errors)
    return fields
