"""Every write in agents: providers and their keys, the model catalog, agents, bootstrap.

Split by subject; import from here (`from apps.agents import services`).
"""

from __future__ import annotations

from apps.agents.services.agents import (
    agent_create,
    agent_delete,
    agent_refs_resolve,
    agent_set_model_policy,
    agent_set_role_model,
    agent_update,
)
from apps.agents.services.audit import UNSET, AuditAction
from apps.agents.services.bootstrap import tenant_bootstrap_agents
from apps.agents.services.platform import (
    platform_access_set,
    platform_provider_link,
    platform_provider_save,
    platform_providers_sync_from_env,
)
from apps.agents.services.providers import (
    catalog_model_create,
    catalog_sync_from_price_table,
    provider_breaker_reset,
    provider_create,
    provider_delete,
    provider_delete_key,
    provider_set_key,
    provider_update,
)
from apps.agents.validation import model_ref_resolve

__all__ = [
    "UNSET",
    "AuditAction",
    "agent_create",
    "agent_delete",
    "agent_refs_resolve",
    "agent_set_model_policy",
    "agent_set_role_model",
    "agent_update",
    "catalog_model_create",
    "catalog_sync_from_price_table",
    "model_ref_resolve",
    "platform_access_set",
    "platform_provider_link",
    "platform_provider_save",
    "platform_providers_sync_from_env",
    "provider_breaker_reset",
    "provider_create",
    "provider_delete",
    "provider_delete_key",
    "provider_set_key",
    "provider_update",
    "tenant_bootstrap_agents",
]
