"""Reads in agents, scoped to a tenant (the price table is platform-wide and says so)."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from apps.agents.models import Agent, CatalogModel, ModelPrice, Provider
from apps.tenancy.models import Tenant


def provider_list(*, tenant: Tenant) -> QuerySet[Provider]:
    return Provider.objects.filter(tenant=tenant).order_by("name")


def provider_get(*, tenant: Tenant, provider_id: uuid.UUID) -> Provider | None:
    return provider_list(tenant=tenant).filter(pk=provider_id).first()


def provider_get_by_name(*, tenant: Tenant, name: str) -> Provider | None:
    return provider_list(tenant=tenant).filter(name=name).first()


def catalog_model_list(*, tenant: Tenant, provider: Provider | None = None) -> QuerySet[CatalogModel]:
    models = (
        CatalogModel.objects.filter(tenant=tenant).select_related("provider").order_by("provider__name", "model_id")
    )
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
