"""A working agent for a new tenant, from whatever the environment configures."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import IntegrityError, transaction

from apps.agents import selectors
from apps.agents.models import Agent, CatalogModel, ModelPrice, PlatformProvider, Provider, ProviderKind
from apps.agents.providers.offline import OFFLINE_MODEL
from apps.agents.services.agents import agent_create
from apps.agents.services.platform import platform_provider_link, platform_providers_sync_from_env
from apps.agents.services.providers import catalog_model_create, provider_create
from apps.core.errors import Conflict
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor

logger = logging.getLogger(__name__)

DEFAULT_AGENT_NAME = "assistant"
# The scheduling tools by name (apps.scheduling registers them at ready(); agents does not import
# it): "remind me tomorrow at 9 ..." works out of the box, schedule_task behind its approval.
DEFAULT_AGENT_TOOLS = [
    "current_time",
    "calculator",
    "http_get",
    "remember",
    "recall",
    "schedule_task",
    "list_scheduled_tasks",
    "cancel_scheduled_task",
]
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer clearly and concisely. Use the tools you are given when they "
    "help (the current time, a calculator, fetching a web page) and say so when you are unsure. When the "
    "user tells you something worth keeping (a name, a preference, a decision), save it with `remember`; "
    "use `recall` to look up what you were told before."
)
# How long bootstrap waits for a local Ollama to list its models before going on without them.
BOOTSTRAP_PROBE_TIMEOUT_SECONDS = 3.0
# Self-hosted kinds have no price-table models: a new link lists what the server serves.
LIVE_LISTED_KINDS = (ProviderKind.OLLAMA, ProviderKind.OPENAI_COMPATIBLE)


def tenant_bootstrap_agents(*, tenant: Tenant, actor: Actor) -> Agent:
    """Give a tenant what it needs to talk to an agent at once. Idempotent: what exists (even
    changed by the tenant) is left as it is; only what is missing is created.

    - the built-in offline provider with `offline-small` (works with no key and no network);
    - the platform providers (the environment's, upserted first: OPENAI_API_KEY -> "openai",
      ANTHROPIC_API_KEY -> "anthropic", OLLAMA_HOST -> "ollama"; and the operator's from the
      admin) that this tenant may use, as links: the tenant never holds a copy of a platform
      key. OpenAI and Anthropic links get the price table's models, Ollama the models it lists
      now (none if it is unreachable);
    - the agent "assistant", whose guide model is the cheapest model of those platform
      providers, or offline-small when there are none.
    """
    platform_providers_sync_from_env()
    usable = selectors.platform_providers_usable(tenant=tenant)
    linked = set(Provider.objects.filter(tenant=tenant, platform__isnull=False).values_list("platform_id", flat=True))
    listed: dict[str, list[str]] = {}
    for platform in usable:
        if platform.pk not in linked and platform.kind in LIVE_LISTED_KINDS:
            listed[platform.name] = _list_platform_models(platform)  # network, so before the transaction

    with transaction.atomic():
        offline = _ensure_offline_provider(tenant=tenant, actor=actor)
        offline_small = CatalogModel.objects.filter(tenant=tenant, provider=offline, model_id=OFFLINE_MODEL).first()
        if offline_small is None:
            offline_small = catalog_model_create(
                tenant=tenant, provider=offline, model_id=OFFLINE_MODEL, supports_tools=True, supports_vision=True
            )
        links = list(Provider.objects.filter(tenant=tenant, platform__in=usable))
        for platform in usable:
            if platform.pk in linked:
                continue
            name = _free_name(tenant=tenant, wanted=platform.name)
            if name is None:
                logger.info("tenant %s: no free name to link platform provider %s", tenant.pk, platform.name)
                continue
            links.append(
                platform_provider_link(
                    tenant=tenant, actor=actor, platform_provider=platform, name=name, models=listed.get(platform.name)
                )
            )

        agent = Agent.objects.filter(tenant=tenant, name=DEFAULT_AGENT_NAME).first()
        if agent is None:
            guide = _cheapest_model(tenant=tenant, providers=links) or offline_small
            agent = agent_create(
                tenant=tenant,
                actor=actor,
                name=DEFAULT_AGENT_NAME,
                description="The default assistant.",
                system_prompt=DEFAULT_SYSTEM_PROMPT,
                guide_model=guide,
                enabled_tools=list(DEFAULT_AGENT_TOOLS),
            )
    return agent


def _free_name(*, tenant: Tenant, wanted: str) -> str | None:
    """The platform provider's own name, or `<name>-platform` when the tenant has a provider of
    its own by that name (left alone)."""
    for name in (wanted, f"{wanted}-platform"[:64]):
        if not Provider.objects.filter(tenant=tenant, name=name).exists():
            return name
    return None


def _ensure_offline_provider(*, tenant: Tenant, actor: Actor) -> Provider:
    existing = Provider.objects.filter(tenant=tenant, kind=ProviderKind.OFFLINE).order_by("created_at").first()
    if existing is not None:
        return existing
    name = "offline" if not Provider.objects.filter(tenant=tenant, name="offline").exists() else "offline-builtin"
    try:
        with transaction.atomic():
            return provider_create(tenant=tenant, actor=actor, kind=ProviderKind.OFFLINE, name=name, models=[])
    except (Conflict, IntegrityError):
        # A concurrent bootstrap made it first.
        return Provider.objects.get(tenant=tenant, name=name)


def _cheapest_model(*, tenant: Tenant, providers: list[Provider]) -> CatalogModel | None:
    from apps.agents.routing import ModelCandidate

    models = list(
        CatalogModel.objects.filter(tenant=tenant, provider__in=providers, enabled=True).select_related("provider")
    )
    if not models:
        return None
    prices = {p.model_id: p for p in ModelPrice.objects.filter(model_id__in=[m.model_id for m in models])}

    def cost(model: CatalogModel) -> tuple[Decimal, str]:
        candidate = ModelCandidate.from_catalog(model, prices.get(model.model_id))
        return candidate.input_per_mtok + candidate.output_per_mtok, model.ref

    return min(models, key=cost)


def _list_platform_models(platform: PlatformProvider) -> list[str]:
    """What a self-hosted platform server (Ollama, OpenAI-compatible) serves now; it has no
    price-table models. Built like the registry builds it, with a short timeout."""
    from apps.agents.crypto import SecretDecryptionError, decrypt_secret
    from apps.agents.providers.base import ProviderError
    from apps.agents.providers.common import ClientOptions
    from apps.agents.providers.openai_compat import OpenAICompatClient
    from apps.agents.providers.registry import resolve_base_url

    try:
        client = OpenAICompatClient(
            kind=platform.kind,
            base_url=resolve_base_url(platform),
            api_key=decrypt_secret(platform.api_key_encrypted),
            options=ClientOptions.build(platform.options, timeout=BOOTSTRAP_PROBE_TIMEOUT_SECONDS, max_retries=0),
            name=platform.name,
            restrict_network=False,
        )
        return [listing.id for listing in client.list_models()]
    except (ProviderError, SecretDecryptionError) as exc:
        logger.info("platform provider %s is not reachable (%s); its links start with no models", platform.name, exc)
        return []
