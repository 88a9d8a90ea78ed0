"""A working agent for a new tenant, from whatever the environment configures."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.agents.models import Agent, CatalogModel, ModelPrice, Provider, ProviderKind
from apps.agents.providers.offline import OFFLINE_MODEL
from apps.agents.providers.registry import ollama_base_url
from apps.agents.services.agents import agent_create
from apps.agents.services.providers import catalog_model_create, provider_create
from apps.core.errors import Conflict
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor

logger = logging.getLogger(__name__)

DEFAULT_AGENT_NAME = "assistant"
DEFAULT_AGENT_TOOLS = ["current_time", "calculator", "http_get", "remember", "recall"]
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer clearly and concisely. Use the tools you are given when they "
    "help (the current time, a calculator, fetching a web page) and say so when you are unsure. When the "
    "user tells you something worth keeping (a name, a preference, a decision), save it with `remember`; "
    "use `recall` to look up what you were told before."
)
# How long bootstrap waits for a local Ollama to list its models before going on without them.
BOOTSTRAP_PROBE_TIMEOUT_SECONDS = 3.0


def tenant_bootstrap_agents(*, tenant: Tenant, actor: Actor) -> Agent:
    """Give a tenant what it needs to talk to an agent at once. Idempotent: what exists (even
    changed by the tenant) is left as it is; only what is missing is created.

    - the built-in offline provider with `offline-small` (works with no key and no network);
    - a provider for each one configured in the environment: OPENAI_API_KEY -> "openai" and
      ANTHROPIC_API_KEY -> "anthropic" with the price table's models, OLLAMA_HOST -> "ollama"
      with the models it lists now (none if it is unreachable);
    - the agent "assistant", whose guide model is the cheapest model of those environment
      providers, or offline-small when there are none.
    """
    ollama_url = ollama_base_url(settings.OLLAMA_HOST) if settings.OLLAMA_HOST else ""
    ollama_models: list[str] = []
    if ollama_url and not Provider.objects.filter(tenant=tenant, name="ollama").exists():
        ollama_models = _list_ollama_models(ollama_url)  # network, so before the transaction

    with transaction.atomic():
        offline = _ensure_offline_provider(tenant=tenant, actor=actor)
        offline_small = CatalogModel.objects.filter(tenant=tenant, provider=offline, model_id=OFFLINE_MODEL).first()
        if offline_small is None:
            offline_small = catalog_model_create(
                tenant=tenant, provider=offline, model_id=OFFLINE_MODEL, supports_tools=True, supports_vision=True
            )
        env_providers: list[Provider] = []
        wanted = [
            ("openai", ProviderKind.OPENAI, settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, None),
            ("anthropic", ProviderKind.ANTHROPIC, settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL, None),
            ("ollama", ProviderKind.OLLAMA, "", ollama_url, ollama_models),
        ]
        for name, kind, api_key, base_url, models in wanted:
            if kind != ProviderKind.OLLAMA and not api_key:
                continue
            if kind == ProviderKind.OLLAMA and not ollama_url:
                continue
            provider = Provider.objects.filter(tenant=tenant, name=name).first()
            if provider is None:
                provider = provider_create(
                    tenant=tenant,
                    actor=actor,
                    kind=kind,
                    name=name,
                    base_url=base_url,
                    api_key=api_key,
                    models=models,
                )
            env_providers.append(provider)

        agent = Agent.objects.filter(tenant=tenant, name=DEFAULT_AGENT_NAME).first()
        if agent is None:
            guide = _cheapest_model(tenant=tenant, providers=env_providers) or offline_small
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


def _list_ollama_models(base_url: str) -> list[str]:
    from apps.agents.providers.base import ProviderError
    from apps.agents.providers.common import ClientOptions
    from apps.agents.providers.openai_compat import OpenAICompatClient

    client = OpenAICompatClient(
        kind=ProviderKind.OLLAMA,
        base_url=base_url,
        options=ClientOptions.build(None, timeout=BOOTSTRAP_PROBE_TIMEOUT_SECONDS, max_retries=0),
        name="ollama",
        restrict_network=False,  # OLLAMA_HOST is the operator's setting, not a tenant's URL
    )
    try:
        return [listing.id for listing in client.list_models()]
    except ProviderError as exc:
        logger.info("Ollama at %s is not reachable (%s); its provider starts with no models", base_url, exc)
        return []
