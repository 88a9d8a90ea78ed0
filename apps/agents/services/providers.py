"""Writes for providers, their keys and the model catalog."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from rest_framework.exceptions import ValidationError

from apps.agents import selectors
from apps.agents.crypto import encrypt_secret, mask_secret
from apps.agents.models import CatalogModel, ModelPrice, Provider, ProviderKind
from apps.agents.services.audit import AuditAction, audit
from apps.agents.validation import clean_base_url, clean_provider_options, clean_slug
from apps.core.errors import Conflict
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor


def provider_create(
    *,
    tenant: Tenant,
    actor: Actor,
    kind: str,
    name: str,
    base_url: str = "",
    api_key: str = "",
    enabled: bool = True,
    options: dict[str, Any] | None = None,
    models: list[str] | None = None,
) -> Provider:
    """A provider and its catalog: `models` (model ids) when given, else the price table's
    models of its kind (none for Ollama and OpenAI-compatible servers: list them live)."""
    if kind not in ProviderKind.values:
        raise ValidationError({"kind": [f"One of {', '.join(ProviderKind.values)}."]})
    name = clean_slug(name, field="name")
    base_url = clean_base_url(base_url)
    if kind == ProviderKind.OPENAI_COMPATIBLE and not base_url:
        raise ValidationError({"base_url": ["An OpenAI-compatible provider needs the server's URL (…/v1)."]})
    if kind == ProviderKind.OLLAMA and not base_url:
        # Never the operator's OLLAMA_HOST: that one is a platform provider, linked, not borrowed.
        raise ValidationError({"base_url": ["An Ollama provider needs its server's URL, e.g. http://ollama:11434/v1."]})
    options = clean_provider_options(options)
    api_key = (api_key or "").strip()
    with transaction.atomic():
        if Provider.objects.filter(tenant=tenant, name=name).exists():
            raise Conflict(f"A provider named '{name}' already exists.")
        provider = Provider.objects.create(
            tenant=tenant,
            kind=kind,
            name=name,
            base_url=base_url,
            enabled=enabled,
            options=options,
            api_key_encrypted=encrypt_secret(api_key),
            api_key_hint=mask_secret(api_key),
        )
        if models is None:
            catalog_sync_from_price_table(tenant=tenant, provider=provider)
        else:
            for model_id in dict.fromkeys(m.strip() for m in models if m and m.strip()):
                catalog_model_create(tenant=tenant, provider=provider, model_id=model_id)
        audit(
            tenant=tenant,
            actor=actor,
            action=AuditAction.PROVIDER_CREATED,
            provider=provider,
            data={"kind": kind, "has_api_key": bool(api_key)},
        )
    return provider


# What a tenant may change on a link to a platform provider; the rest belongs to the operator.
LINK_EDITABLE = ("name", "enabled")
LINK_REFUSAL = "This is a platform provider: its endpoint, headers and key are the operator's and cannot be changed."


def refuse_if_linked(provider: Provider, *fields: str) -> None:
    if provider.platform_id is not None and fields:
        raise ValidationError({field: [LINK_REFUSAL] for field in fields})


def provider_update(
    *,
    tenant: Tenant,
    actor: Actor,
    provider: Provider,
    name: str | None = None,
    base_url: str | None = None,
    enabled: bool | None = None,
    options: dict[str, Any] | None = None,
    api_key: str | None = None,
) -> Provider:
    """Changes what is given. The kind cannot change: make a new provider instead.

    A new base_url without `api_key` in the same call clears the stored key and header values:
    a key is only ever sent to the endpoint it was given for. Header values in `options` that
    equal the hint a response showed keep the stored value (a client may send back what it read).
    A link to a platform provider changes only its name and `enabled`."""
    refuse_if_linked(
        provider,
        *[f for f, v in (("base_url", base_url), ("options", options), ("api_key", api_key)) if v is not None],
    )
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk, tenant=tenant)
        changed: dict[str, Any] = {}
        if name is not None and name != locked.name:
            name = clean_slug(name, field="name")
            if Provider.objects.filter(tenant=tenant, name=name).exclude(pk=locked.pk).exists():
                raise Conflict(f"A provider named '{name}' already exists.")
            changed["name"] = name
        if base_url is not None:
            cleaned = clean_base_url(base_url)
            if locked.kind in (ProviderKind.OPENAI_COMPATIBLE, ProviderKind.OLLAMA) and not cleaned:
                raise ValidationError({"base_url": ["This provider needs the server's URL."]})
            if cleaned != locked.base_url:
                changed["base_url"] = cleaned
        if enabled is not None and enabled != locked.enabled:
            changed["enabled"] = enabled
        if options is not None:
            cleaned_options = _keep_hinted_headers(
                clean_provider_options(options), locked.options or {}, url_changes="base_url" in changed
            )
            if cleaned_options != locked.options:
                changed["options"] = cleaned_options
        cleared: list[str] = []
        if "base_url" in changed:
            if api_key is None and locked.api_key_encrypted:
                changed["api_key_encrypted"], changed["api_key_hint"] = "", ""
                cleared.append("api_key")
            current_options = changed.get("options", locked.options) or {}
            if options is None and current_options.get("headers"):
                changed["options"] = {k: v for k, v in current_options.items() if k != "headers"}
                cleared.append("headers")
        if api_key is not None:
            api_key = api_key.strip()
            if not api_key:
                raise ValidationError({"api_key": ["Give the key; DELETE /api/providers/{name}/key removes it."]})
            changed["api_key_encrypted"], changed["api_key_hint"] = encrypt_secret(api_key), mask_secret(api_key)
        if changed:
            for field, value in changed.items():
                setattr(locked, field, value)
            locked.save(update_fields=[*changed, "updated_at"])
            data: dict[str, Any] = {"changed": sorted(k for k in changed if k != "api_key_encrypted")}
            if cleared:
                data["cleared"] = cleared
            audit(tenant=tenant, actor=actor, action=AuditAction.PROVIDER_UPDATED, provider=locked, data=data)
    return locked


def _keep_hinted_headers(options: dict[str, Any], stored: dict[str, Any], *, url_changes: bool) -> dict[str, Any]:
    headers = options.get("headers")
    old = stored.get("headers") or {}
    if not headers or not old:
        return options
    hinted = [name for name, value in headers.items() if name in old and value == mask_secret(old[name])]
    if hinted and url_changes:
        raise ValidationError(
            {"options": {"headers": [f"The base_url changes: give the values of {', '.join(hinted)} again."]}}
        )
    kept = {
        name: old[name] if name in old and value == mask_secret(old[name]) else value for name, value in headers.items()
    }
    return {**options, "headers": kept}


def provider_delete(*, tenant: Tenant, actor: Actor, provider: Provider) -> None:
    """Its catalog models go with it; agents that used them lose those role assignments. For a
    link to a platform provider this unlinks it for this tenant only; the platform row stays."""
    from apps.agents.breaker import breaker_forget

    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk, tenant=tenant)
        audit(tenant=tenant, actor=actor, action=AuditAction.PROVIDER_DELETED, provider=locked)
        locked.delete()
        transaction.on_commit(lambda: breaker_forget(provider))


def provider_set_key(*, tenant: Tenant, actor: Actor, provider: Provider, api_key: str) -> Provider:
    refuse_if_linked(provider, "api_key")
    api_key = (api_key or "").strip()
    if not api_key:
        raise ValidationError({"api_key": ["Give the key; DELETE removes it."]})
    hint = mask_secret(api_key)
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk, tenant=tenant)
        locked.api_key_encrypted = encrypt_secret(api_key)
        locked.api_key_hint = hint
        locked.save(update_fields=["api_key_encrypted", "api_key_hint", "updated_at"])
        audit(tenant=tenant, actor=actor, action=AuditAction.PROVIDER_KEY_SET, provider=locked, data={"hint": hint})
    return locked


def provider_delete_key(*, tenant: Tenant, actor: Actor, provider: Provider) -> Provider:
    refuse_if_linked(provider, "api_key")
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk, tenant=tenant)
        had_key = bool(locked.api_key_encrypted)
        locked.api_key_encrypted = ""
        locked.api_key_hint = ""
        locked.save(update_fields=["api_key_encrypted", "api_key_hint", "updated_at"])
        if had_key:
            audit(tenant=tenant, actor=actor, action=AuditAction.PROVIDER_KEY_DELETED, provider=locked)
    return locked


def provider_breaker_reset(*, tenant: Tenant, actor: Actor, provider: Provider) -> dict[str, Any]:
    from apps.agents.breaker import breaker_reset

    status = breaker_reset(tenant=tenant, provider=provider)
    audit(tenant=tenant, actor=actor, action=AuditAction.BREAKER_RESET, provider=provider)
    return status


# --- catalog -------------------------------------------------------------------------------------


def catalog_model_create(
    *,
    tenant: Tenant,
    provider: Provider,
    model_id: str,
    display_name: str = "",
    supports_tools: bool | None = None,
    supports_vision: bool | None = None,
    supports_streaming: bool | None = None,
    context_window: int | None = None,
    input_per_mtok: Decimal | None = None,
    output_per_mtok: Decimal | None = None,
    enabled: bool = True,
) -> CatalogModel:
    """Capabilities not given come from the price table's row for `model_id`, if any. Prices not
    given stay zero, which means "follow the price table" (see routing.ModelCandidate)."""
    if provider.tenant_id != tenant.pk:
        raise ValidationError({"provider": ["Not one of your providers."]})
    model_id = (model_id or "").strip()
    if not model_id or len(model_id) > 200:
        raise ValidationError({"model_id": ["A model id of 1 to 200 characters."]})
    price = selectors.price_for(model_id=model_id)

    def pick(given, attribute: str, default):
        if given is not None:
            return given
        return getattr(price, attribute) if price is not None else default

    with transaction.atomic():
        if CatalogModel.objects.filter(tenant=tenant, provider=provider, model_id=model_id).exists():
            raise Conflict(f"'{provider.name}/{model_id}' is already in the catalog.")
        return CatalogModel.objects.create(
            tenant=tenant,
            provider=provider,
            model_id=model_id,
            display_name=display_name,
            supports_tools=pick(supports_tools, "supports_tools", True),
            supports_vision=pick(supports_vision, "supports_vision", False),
            supports_streaming=pick(supports_streaming, "supports_streaming", True),
            context_window=pick(context_window, "context_window", 128000),
            input_per_mtok=input_per_mtok if input_per_mtok is not None else Decimal("0"),
            output_per_mtok=output_per_mtok if output_per_mtok is not None else Decimal("0"),
            enabled=enabled,
        )


def catalog_sync_from_price_table(*, tenant: Tenant, provider: Provider) -> list[CatalogModel]:
    """Add the price table's models of the provider's kind that its catalog lacks; returns the
    new entries. Existing entries (and ones an admin disabled) are left alone."""
    if provider.tenant_id != tenant.pk:
        raise ValidationError({"provider": ["Not one of your providers."]})
    present = set(CatalogModel.objects.filter(tenant=tenant, provider=provider).values_list("model_id", flat=True))
    created = []
    for price in ModelPrice.objects.filter(provider_kind=provider.kind).exclude(model_id__in=present):
        created.append(
            CatalogModel.objects.create(
                tenant=tenant,
                provider=provider,
                model_id=price.model_id,
                supports_tools=price.supports_tools,
                supports_vision=price.supports_vision,
                supports_streaming=price.supports_streaming,
                context_window=price.context_window,
            )
        )
    return created
