"""Reads in agents, scoped to a tenant (the price table is platform-wide and says so)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db.models import QuerySet

from apps.agents.models import (
    Agent,
    CatalogModel,
    ModelPrice,
    PlatformProvider,
    PlatformProviderAccess,
    PlatformSpend,
    Provider,
)
from apps.core.ids import parse_uuid
from apps.tenancy.models import Tenant


def provider_list(*, tenant: Tenant) -> QuerySet[Provider]:
    """The tenant's providers; links to a platform provider it may no longer use are left out
    (the operator revoked or disabled it), so nothing offers their models."""
    providers = Provider.objects.filter(tenant=tenant).select_related("platform").order_by("name")
    blocked = platform_blocked_ids(tenant_id=tenant.pk)
    return providers.exclude(platform_id__in=blocked) if blocked else providers


def provider_get(*, tenant: Tenant, provider_id: uuid.UUID) -> Provider | None:
    return provider_list(tenant=tenant).filter(pk=provider_id).first()


def provider_get_by_name(*, tenant: Tenant, name: str) -> Provider | None:
    return provider_list(tenant=tenant).filter(name=name).first()


def catalog_model_list(*, tenant: Tenant, provider: Provider | None = None) -> QuerySet[CatalogModel]:
    models = (
        CatalogModel.objects.filter(tenant=tenant).select_related("provider").order_by("provider__name", "model_id")
    )
    blocked = platform_blocked_ids(tenant_id=tenant.pk)
    if blocked:
        models = models.exclude(provider__platform_id__in=blocked)
    return models.filter(provider=provider) if provider is not None else models


def catalog_models_available(
    *,
    tenant: Tenant,
    provider_name: str | None = None,
    supports_tools: bool | None = None,
    supports_vision: bool | None = None,
) -> QuerySet[CatalogModel]:
    """What agents can be given: enabled models of enabled providers."""
    models = catalog_model_list(tenant=tenant).filter(enabled=True, provider__enabled=True)
    if provider_name:
        models = models.filter(provider__name=provider_name)
    if supports_tools is not None:
        models = models.filter(supports_tools=supports_tools)
    if supports_vision is not None:
        models = models.filter(supports_vision=supports_vision)
    return models


def catalog_model_by_ref(*, tenant: Tenant, ref: str) -> CatalogModel | None:
    """`<provider name>/<model id>`; model ids may contain slashes, provider names never do."""
    provider_name, _, model_id = (ref or "").partition("/")
    if not provider_name or not model_id:
        return None
    return catalog_model_list(tenant=tenant).filter(provider__name=provider_name, model_id=model_id).first()


def agent_list(*, tenant: Tenant) -> QuerySet[Agent]:
    return (
        Agent.objects.filter(tenant=tenant)
        .select_related(
            "guide_model__provider",
            "specialist_model__provider",
            "vision_model__provider",
        )
        .order_by("name")
    )


def agent_get(*, tenant: Tenant, agent_id: uuid.UUID) -> Agent | None:
    return agent_list(tenant=tenant).filter(pk=agent_id).first()


def agent_get_by_name(*, tenant: Tenant, name: str) -> Agent | None:
    return agent_list(tenant=tenant).filter(name=name).first()


def agent_resolve(*, tenant: Tenant, name_or_id: str | None) -> Agent | None:
    """An agent by id or name; without one, the tenant's first enabled agent."""
    agents = Agent.objects.filter(tenant=tenant)
    if not name_or_id:
        return agents.filter(enabled=True).order_by("created_at").first()
    as_uuid = parse_uuid(name_or_id)
    if as_uuid is not None:
        found = agents.filter(pk=as_uuid).first()
        if found is not None:
            return found
    return agents.filter(name=name_or_id).first()


def price_table(*, provider_kind: str | None = None) -> QuerySet[ModelPrice]:
    """The platform-wide price table; it belongs to no tenant."""
    prices = ModelPrice.objects.order_by("provider_kind", "model_id")
    return prices.filter(provider_kind=provider_kind) if provider_kind else prices


def price_for(*, model_id: str) -> ModelPrice | None:
    return ModelPrice.objects.filter(model_id=model_id).first()


def _role_model(model: CatalogModel | None) -> dict | None:
    if model is None:
        return None
    return {
        "ref": model.ref,
        "supports_tools": model.supports_tools,
        "supports_vision": model.supports_vision,
        "enabled": model.enabled and model.provider.enabled,
    }


def roster_entry(agent: Agent) -> dict:
    """An agent's models per role: as assigned, and as used (unset roles use the guide's)."""
    guide = agent.guide_model
    specialist = agent.specialist_model or guide
    vision = agent.vision_model or guide
    return {
        "id": agent.pk,
        "name": agent.name,
        "enabled": agent.enabled,
        "models": {
            "guide": _role_model(agent.guide_model),
            "specialist": _role_model(agent.specialist_model),
            "vision": _role_model(agent.vision_model),
        },
        "effective": {
            "guide": guide.ref if guide else None,
            "specialist": specialist.ref if specialist else None,
            "vision": vision.ref if vision else None,
        },
        "preferred_models": list((agent.model_policy or {}).get("preferred_models") or []),
    }


# --- platform providers --------------------------------------------------------------------------


def _usable(platform_provider: PlatformProvider, access: PlatformProviderAccess | None) -> bool:
    if not platform_provider.enabled:
        return False
    return access.allowed if access is not None else platform_provider.available_to_all_tenants


def platform_provider_usable(*, tenant: Tenant, platform_provider: PlatformProvider) -> bool:
    """Enabled, and granted: the tenant's access row decides when there is one, else
    `available_to_all_tenants`."""
    access = PlatformProviderAccess.objects.filter(tenant=tenant, platform_provider=platform_provider).first()
    return _usable(platform_provider, access)


def platform_providers_usable(*, tenant: Tenant) -> list[PlatformProvider]:
    access = {a.platform_provider_id: a for a in PlatformProviderAccess.objects.filter(tenant=tenant)}
    return [p for p in PlatformProvider.objects.order_by("name") if _usable(p, access.get(p.pk))]


def platform_provider_get_usable(*, tenant: Tenant, name: str) -> PlatformProvider | None:
    return next((p for p in platform_providers_usable(tenant=tenant) if p.name == name), None)


def platform_blocked_ids(*, tenant_id) -> set[uuid.UUID]:
    """Ids of the platform providers this tenant may not use. There are a handful of platform
    providers, so deciding in Python keeps the rule in one place (`_usable`)."""
    access = {a.platform_provider_id: a for a in PlatformProviderAccess.objects.filter(tenant_id=tenant_id)}
    return {p.pk for p in PlatformProvider.objects.all() if not _usable(p, access.get(p.pk))}


def platform_cap_for(tenant: Tenant, platform_provider: PlatformProvider) -> Decimal | None:
    """The operator's monthly cap on this tenant's spend through the platform provider; None: no cap."""
    return platform_cap_of(tenant_id=tenant.pk, platform_provider_id=platform_provider.pk)


def platform_cap_of(*, tenant_id, platform_provider_id) -> Decimal | None:
    """`platform_cap_for` by ids, one single-column read: what the budget check of every call
    on a platform link asks (apps/conversations/budgets.py)."""
    cap = (
        PlatformProviderAccess.objects.filter(tenant_id=tenant_id, platform_provider_id=platform_provider_id)
        .order_by()  # one row at most: no need for the model's ordering (a join on two tables)
        .values_list("monthly_cap_usd", flat=True)
        .first()
    )
    return Decimal(cap) if cap is not None else None


def platform_spend_this_month(tenant: Tenant, platform_provider: PlatformProvider) -> Decimal:
    """What the tenant's model calls through the platform provider cost this calendar month
    (UTC): the PlatformSpend ledger, which the turn engine's settle of every call on a link adds
    to (apps/conversations/budgets.budget_settle). Keyed by the platform row, so renaming,
    unlinking or re-linking does not reset it. Settled spend only: calls in flight are counted
    by the budget check, not here."""
    from django.utils import timezone

    row = (
        PlatformSpend.objects.filter(
            tenant=tenant, platform_provider=platform_provider, month=timezone.now().date().replace(day=1)
        )
        .values_list("cost_usd", flat=True)
        .first()
    )
    return Decimal(row) if row is not None else Decimal("0")


def provider_models_live(*, tenant: Tenant, provider: Provider) -> dict:
    """What the provider's endpoint lists now (one short attempt), each marked `in_catalog` when
    agents can already use it. Raises ProviderError when the endpoint fails or refuses."""
    from apps.agents.providers.registry import interactive_client_for

    listings = interactive_client_for(provider).list_models()
    known = set(catalog_model_list(tenant=tenant, provider=provider).values_list("model_id", flat=True))
    models = [{"id": m.id, "owned_by": m.owned_by, "in_catalog": m.id in known} for m in listings]
    return {"provider": provider.name, "models": models}


def provider_probe(*, provider: Provider) -> dict:
    """Whether the provider answers (its model list, once): failures are in the answer, not raised."""
    from dataclasses import asdict

    from apps.agents.providers.base import ProviderError
    from apps.agents.providers.registry import interactive_client_for

    try:
        return asdict(interactive_client_for(provider).probe())
    except ProviderError as exc:  # e.g. an undecryptable key: the client cannot even be built
        return {"reachable": False, "latency_ms": 0.0, "error": str(exc), "models_seen": 0}
