"""Writes for agents: creation, changes, role models and model policies."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework.exceptions import ValidationError

from apps.agents import selectors
from apps.agents.models import Agent, CatalogModel
from apps.agents.services.audit import UNSET, AuditAction, audit
from apps.agents.validation import (
    ROLES,
    check_model_belongs,
    clean_agent_fields,
    clean_model_policy,
    clean_slug,
    model_ref_resolve,
)
from apps.core.errors import Conflict
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor
from apps.tenancy.services import tenant_limit_check

ROLE_REF_FIELDS = ("guide_model", "specialist_model", "vision_model")


def agent_refs_resolve(*, tenant: Tenant, data: dict[str, Any]) -> dict[str, Any]:
    """Agent fields as a client sends them (role models as refs `<provider>/<model>`) made ready
    for agent_create/agent_update: refs become the tenant's catalog entries (an unknown ref is a
    validation error naming its field). The API and the dashboard both send their input here."""
    data = dict(data)
    for field in ROLE_REF_FIELDS:
        if data.get(field):
            data[field] = model_ref_resolve(tenant=tenant, ref=data[field], field=field)
    if "model_policy" in data and data["model_policy"] is not None:
        data["model_policy"] = dict(data["model_policy"])
    return data


def agent_create(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str,
    description: str = "",
    system_prompt: str = "",
    persona: str = "",
    guide_model: CatalogModel | None = None,
    specialist_model: CatalogModel | None = None,
    vision_model: CatalogModel | None = None,
    model_policy: dict[str, Any] | None = None,
    max_steps: int = 10,
    temperature: float | None = None,
    max_output_tokens: int | None = None,
    enabled_tools: list[str] | None = None,
    enabled: bool = True,
) -> Agent:
    name = clean_slug(name, field="name")
    roles = {"guide_model": guide_model, "specialist_model": specialist_model, "vision_model": vision_model}
    for field, model in roles.items():
        check_model_belongs(tenant=tenant, model=model, field=field)
    fields = clean_agent_fields(
        {
            "max_steps": max_steps,
            "temperature": temperature,
            "max_output_tokens": max_output_tokens,
            "enabled_tools": enabled_tools or [],
        }
    )
    policy = clean_model_policy(tenant=tenant, policy=model_policy)
    with transaction.atomic():
        tenant_limit_check(
            tenant=tenant,
            setting="max_agents",
            noun="agents",
            count_existing=lambda: Agent.objects.filter(tenant=tenant).count(),
        )
        if Agent.objects.filter(tenant=tenant, name=name).exists():
            raise Conflict(f"An agent named '{name}' already exists.")
        agent = Agent.objects.create(
            tenant=tenant,
            name=name,
            description=description,
            system_prompt=system_prompt,
            persona=persona,
            guide_model=guide_model,
            specialist_model=specialist_model,
            vision_model=vision_model,
            model_policy=policy,
            enabled=enabled,
            **fields,
        )
        audit(tenant=tenant, actor=actor, action=AuditAction.AGENT_CREATED, agent=agent)
    return agent


def agent_update(
    *,
    tenant: Tenant,
    actor: Actor,
    agent: Agent,
    name: str = UNSET,
    description: str = UNSET,
    system_prompt: str = UNSET,
    persona: str = UNSET,
    guide_model: CatalogModel | None = UNSET,
    specialist_model: CatalogModel | None = UNSET,
    vision_model: CatalogModel | None = UNSET,
    model_policy: dict[str, Any] | None = UNSET,
    max_steps: int = UNSET,
    temperature: float | None = UNSET,
    max_output_tokens: int | None = UNSET,
    enabled_tools: list[str] = UNSET,
    enabled: bool = UNSET,
) -> Agent:
    """Changes the fields given (UNSET ones stay; None clears a model or a number)."""
    given = {
        key: value
        for key, value in {
            "name": name,
            "description": description,
            "system_prompt": system_prompt,
            "persona": persona,
            "guide_model": guide_model,
            "specialist_model": specialist_model,
            "vision_model": vision_model,
            "model_policy": model_policy,
            "max_steps": max_steps,
            "temperature": temperature,
            "max_output_tokens": max_output_tokens,
            "enabled_tools": enabled_tools,
            "enabled": enabled,
        }.items()
        if value is not UNSET
    }
    if "name" in given:
        given["name"] = clean_slug(given["name"], field="name")
    for field in ("guide_model", "specialist_model", "vision_model"):
        if field in given:
            check_model_belongs(tenant=tenant, model=given[field], field=field)
    if "model_policy" in given:
        given["model_policy"] = clean_model_policy(tenant=tenant, policy=given["model_policy"])
    given = clean_agent_fields(given)
    with transaction.atomic():
        locked = Agent.objects.select_for_update().get(pk=agent.pk, tenant=tenant)
        if "name" in given and Agent.objects.filter(tenant=tenant, name=given["name"]).exclude(pk=locked.pk).exists():
            raise Conflict(f"An agent named '{given['name']}' already exists.")
        for field, value in given.items():
            setattr(locked, field, value)
        if given:
            locked.save(update_fields=[*given, "updated_at"])
            audit(
                tenant=tenant,
                actor=actor,
                action=AuditAction.AGENT_UPDATED,
                agent=locked,
                data={"changed": sorted(given)},
            )
    return selectors.agent_get(tenant=tenant, agent_id=locked.pk)


def agent_delete(*, tenant: Tenant, actor: Actor, agent: Agent) -> None:
    with transaction.atomic():
        deleted, _ = Agent.objects.filter(pk=agent.pk, tenant=tenant).delete()
        if deleted:
            audit(tenant=tenant, actor=actor, action=AuditAction.AGENT_DELETED, agent=agent)


def agent_set_role_model(*, tenant: Tenant, actor: Actor, agent: Agent, role: str, model: CatalogModel | None) -> Agent:
    """Assign (or with None, clear) the agent's model for `role`: guide, specialist or vision."""
    if role not in ROLES:
        raise ValidationError({"role": [f"One of {', '.join(ROLES)}."]})
    check_model_belongs(tenant=tenant, model=model, field="model")
    if role == "vision" and model is not None and not model.supports_vision:
        raise ValidationError({"model": [f"{model.ref} does not support images; pick a vision-capable model."]})
    return agent_update(tenant=tenant, actor=actor, agent=agent, **{f"{role}_model": model})


def agent_set_model_policy(*, tenant: Tenant, actor: Actor, agent: Agent, policy: dict[str, Any]) -> Agent:
    return agent_update(tenant=tenant, actor=actor, agent=agent, model_policy=policy)
