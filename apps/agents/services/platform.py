"""Writes for platform providers: the operator's providers that tenants link to and use.

The environment names up to three (OPENAI_API_KEY, ANTHROPIC_API_KEY, OLLAMA_HOST); they are
upserted by name, so running the sync again (every bootstrap, every migrate) never duplicates
them. Operators add others in the admin. Tenants never hold a copy of a platform key: they hold
a link (Provider.platform), and the client is built from the platform row (providers/registry.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from rest_framework.exceptions import ValidationError

from apps.agents import selectors
from apps.agents.crypto import SecretDecryptionError, decrypt_secret, encrypt_secret, mask_secret
from apps.agents.models import PlatformProvider, PlatformProviderAccess, Provider, ProviderKind
from apps.agents.services.audit import AuditAction, audit
from apps.agents.validation import clean_base_url, clean_provider_options, clean_slug
from apps.core.errors import Conflict
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvPlatformProvider:
    name: str
    kind: str
    base_url: str
    api_key: str


def env_platform_providers() -> list[EnvPlatformProvider]:
    """What the environment configures now (read at call time, so tests can change settings)."""
    from apps.agents.providers.registry import ollama_base_url

    wanted = []
    if settings.OPENAI_API_KEY:
        wanted.append(
            EnvPlatformProvider("openai", ProviderKind.OPENAI, settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY)
        )
    if settings.ANTHROPIC_API_KEY:
        wanted.append(
            EnvPlatformProvider(
                "anthropic", ProviderKind.ANTHROPIC, settings.ANTHROPIC_BASE_URL, settings.ANTHROPIC_API_KEY
            )
        )
    if settings.OLLAMA_HOST:
        wanted.append(EnvPlatformProvider("ollama", ProviderKind.OLLAMA, ollama_base_url(settings.OLLAMA_HOST), ""))
    return wanted


def sync_env_platform_providers(model: Any) -> list[Any]:
    """Upsert the environment's platform providers by name into `model` (the real model, or the
    historical one inside a migration). Only what differs is written, so a sync that changes
    nothing leaves updated_at alone. A variable that is unset leaves its row as it is: an
    operator may have configured it in the admin since."""
    rows = []
    for wanted in env_platform_providers():
        base_url = (wanted.base_url or "").strip().rstrip("/")
        row = model.objects.filter(name=wanted.name).first()
        if row is None:
            row = model.objects.create(
                name=wanted.name,
                kind=wanted.kind,
                base_url=base_url,
                api_key_encrypted=encrypt_secret(wanted.api_key),
                api_key_hint=mask_secret(wanted.api_key),
                from_environment=True,
            )
        else:
            try:
                current_key = decrypt_secret(row.api_key_encrypted)
            except SecretDecryptionError:
                current_key = None  # rotated away: the environment's key replaces it
            changed = {}
            if row.kind != wanted.kind:
                changed["kind"] = wanted.kind
            if row.base_url != base_url:
                changed["base_url"] = base_url
            if current_key != wanted.api_key:
                changed["api_key_encrypted"] = encrypt_secret(wanted.api_key)
                changed["api_key_hint"] = mask_secret(wanted.api_key)
            if not row.from_environment:
                changed["from_environment"] = True
            if changed:
                model.objects.filter(pk=row.pk).update(**changed)
                row = model.objects.get(pk=row.pk)
        rows.append(row)
    return rows


def platform_providers_sync_from_env() -> list[PlatformProvider]:
    with transaction.atomic():
        return sync_env_platform_providers(PlatformProvider)


def platform_providers_sync_receiver(sender, *, using: str = "default", plan=None, **kwargs) -> None:  # noqa: ARG001
    """post_migrate: sync after a migrate that reached the current models (not after migrating
    backwards, when the table may not exist), on the database that was migrated."""
    if plan is not None and any(backwards for _, backwards in plan):
        return
    with transaction.atomic(using=using):
        sync_env_platform_providers(PlatformProvider)


def platform_provider_save(
    *,
    actor: Actor,
    platform_provider: PlatformProvider | None,
    name: str,
    kind: str,
    base_url: str = "",
    options: dict[str, Any] | None = None,
    enabled: bool = True,
    available_to_all_tenants: bool = True,
    api_key: str | None = None,
    clear_api_key: bool = False,
) -> PlatformProvider:
    """Create (platform_provider=None) or change a platform provider; the operators' admin path.
    `api_key` None keeps the stored key. Operator URLs are trusted, so no outbound policy here."""
    if kind not in ProviderKind.values or kind == ProviderKind.OFFLINE:
        raise ValidationError({"kind": ["One of openai, anthropic, ollama, openai_compatible."]})
    name = clean_slug(name, field="name")
    base_url = clean_base_url(base_url, restricted=False)
    if kind in (ProviderKind.OPENAI_COMPATIBLE, ProviderKind.OLLAMA) and not base_url:
        raise ValidationError({"base_url": ["This kind needs the server's URL."]})
    options = clean_provider_options(options, allow_auth_headers=True)
    with transaction.atomic():
        clash = PlatformProvider.objects.filter(name=name)
        if platform_provider is not None:
            clash = clash.exclude(pk=platform_provider.pk)
        if clash.exists():
            raise Conflict(f"A platform provider named '{name}' already exists.")
        row = platform_provider or PlatformProvider(kind=kind)
        if platform_provider is not None and platform_provider.kind != kind:
            raise ValidationError({"kind": ["The kind cannot change: tenants' catalogs depend on it."]})
        row.name, row.base_url, row.options = name, base_url, options
        row.enabled, row.available_to_all_tenants = enabled, available_to_all_tenants
        if api_key:
            row.api_key_encrypted, row.api_key_hint = encrypt_secret(api_key.strip()), mask_secret(api_key)
        elif clear_api_key:
            row.api_key_encrypted, row.api_key_hint = "", ""
        row.save()
    # Not a tenant's action, so not in a tenant's audit log; the operators' log has it.
    logger.info(
        "platform provider %s saved by %s (key %s)",
        row.name,
        actor.label,
        "replaced" if api_key else "cleared" if clear_api_key else "kept",
    )
    return row


def platform_access_set(
    *,
    tenant: Tenant,
    platform_provider: PlatformProvider,
    allowed: bool,
    monthly_cap_usd: Decimal | None = None,
) -> PlatformProviderAccess:
    """The operator's decision for one tenant (upserted: one row per tenant and provider)."""
    if monthly_cap_usd is not None and monthly_cap_usd < 0:
        raise ValidationError({"monthly_cap_usd": ["A non-negative amount of US dollars, or empty for no cap."]})
    with transaction.atomic():
        access, _ = PlatformProviderAccess.objects.update_or_create(
            tenant=tenant,
            platform_provider=platform_provider,
            defaults={"allowed": allowed, "monthly_cap_usd": monthly_cap_usd},
        )
    return access


def platform_provider_link(
    *,
    tenant: Tenant,
    actor: Actor,
    platform_provider: PlatformProvider,
    name: str | None = None,
    enabled: bool = True,
    models: list[str] | None = None,
) -> Provider:
    """A tenant Provider that links to `platform_provider`: no endpoint, key or options of its
    own. Its catalog gets `models`, else the price table's models of the kind. A platform
    provider the tenant may not use is refused as if it did not exist."""
    from apps.agents.services.providers import catalog_model_create, catalog_sync_from_price_table

    if not selectors.platform_provider_usable(tenant=tenant, platform_provider=platform_provider):
        raise ValidationError({"platform": [f"No platform provider named '{platform_provider.name}' is available."]})
    name = clean_slug(name or platform_provider.name, field="name")
    with transaction.atomic():
        if Provider.objects.filter(tenant=tenant, platform=platform_provider).exists():
            raise Conflict(f"Platform provider '{platform_provider.name}' is already linked.")
        if Provider.objects.filter(tenant=tenant, name=name).exists():
            raise Conflict(f"A provider named '{name}' already exists.")
        provider = Provider.objects.create(
            tenant=tenant, kind=platform_provider.kind, name=name, enabled=enabled, platform=platform_provider
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
            data={"kind": provider.kind, "platform": platform_provider.name},
        )
    return provider
