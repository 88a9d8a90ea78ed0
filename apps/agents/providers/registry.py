"""From a Provider row to a ProviderClient.

Clients are cached per process, keyed by everything that shapes them (endpoint, encrypted key,
options, timeouts): building an SDK client costs milliseconds and its connection pool saves a
TCP/TLS handshake per call, which matters inside the per-turn overhead budget. Changing a
provider's key or options changes the key, so a stale client is never used.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from django.conf import settings

from apps.agents.crypto import SecretDecryptionError, decrypt_secret
from apps.agents.models import Provider, ProviderKind
from apps.agents.providers.anthropic_client import ANTHROPIC_DEFAULT_BASE_URL, AnthropicClient
from apps.agents.providers.base import ProviderClient, ProviderRequestError
from apps.agents.providers.common import ClientOptions
from apps.agents.providers.offline import OfflineClient
from apps.agents.providers.openai_compat import OPENAI_DEFAULT_BASE_URL, OpenAICompatClient
from apps.agents.validation import is_operator_url

__all__ = ["OfflineClient", "client_for", "interactive_client_for", "offline_client", "resolve_base_url"]

OLLAMA_DEFAULT_HOST = "http://127.0.0.1:11434"
INTERACTIVE_TIMEOUT_SECONDS = 10.0
_CACHE_SIZE = 64

_offline = OfflineClient()
_cache: OrderedDict[tuple[Any, ...], ProviderClient] = OrderedDict()
_cache_lock = threading.Lock()


def offline_client() -> OfflineClient:
    """The offline model, usable without any Provider row (a tenant with nothing configured)."""
    return _offline


def client_for(provider: Provider, *, timeout: float | None = None, max_retries: int | None = None) -> ProviderClient:
    """The client for `provider`. `timeout` / `max_retries` override settings and the provider's
    options, for callers that must answer quickly (the reachability test, the live model list)."""
    if provider.kind == ProviderKind.OFFLINE:
        return _offline
    options = ClientOptions.build(provider.options, timeout=timeout, max_retries=max_retries)
    base_url = resolve_base_url(provider)
    # A tenant-owned row's own base_url is tenant input: the outbound policy applies. An empty
    # one means the public endpoint or OLLAMA_HOST, which the operator chose.
    restrict_network = bool((provider.base_url or "").strip()) and not is_operator_url(provider.base_url)
    key = (
        restrict_network,
        str(provider.pk),
        provider.kind,
        provider.name,
        base_url,
        provider.api_key_encrypted,
        json.dumps(provider.options or {}, sort_keys=True, default=str),
        options.timeout,
        options.max_retries,
    )
    with _cache_lock:
        client = _cache.get(key)
        if client is not None:
            _cache.move_to_end(key)
            return client
    client = _build(provider, base_url=base_url, options=options, restrict_network=restrict_network)
    with _cache_lock:
        _cache[key] = client
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return client


def interactive_client_for(provider: Provider) -> ProviderClient:
    """For calls a person waits on (the reachability test, the live model list): one attempt,
    and at most INTERACTIVE_TIMEOUT_SECONDS, rather than a turn's patient retries."""
    return client_for(
        provider, timeout=min(settings.PROVIDER_TIMEOUT_SECONDS, INTERACTIVE_TIMEOUT_SECONDS), max_retries=0
    )


def _build(provider: Provider, *, base_url: str, options: ClientOptions, restrict_network: bool) -> ProviderClient:
    try:
        api_key = decrypt_secret(provider.api_key_encrypted)
    except SecretDecryptionError as exc:
        raise ProviderRequestError(f"{provider.name}: {exc}") from exc
    if provider.kind == ProviderKind.ANTHROPIC:
        return AnthropicClient(
            base_url=base_url, api_key=api_key, options=options, name=provider.name, restrict_network=restrict_network
        )
    if provider.kind in (ProviderKind.OPENAI, ProviderKind.OLLAMA, ProviderKind.OPENAI_COMPATIBLE):
        return OpenAICompatClient(
            kind=provider.kind,
            base_url=base_url,
            api_key=api_key,
            options=options,
            name=provider.name,
            restrict_network=restrict_network,
        )
    raise ProviderRequestError(f"{provider.name}: unknown provider kind {provider.kind!r}.")


def resolve_base_url(provider: Provider) -> str:
    """The endpoint a provider's client talks to; empty `base_url` means the public one."""
    base_url = (provider.base_url or "").strip().rstrip("/")
    if provider.kind == ProviderKind.OPENAI:
        return base_url or OPENAI_DEFAULT_BASE_URL
    if provider.kind == ProviderKind.ANTHROPIC:
        # The SDK appends /v1/messages itself; people often paste the URL with /v1.
        return (base_url or ANTHROPIC_DEFAULT_BASE_URL).removesuffix("/v1")
    if provider.kind == ProviderKind.OLLAMA:
        return base_url or ollama_base_url(settings.OLLAMA_HOST)
    if provider.kind == ProviderKind.OPENAI_COMPATIBLE:
        if not base_url:
            raise ProviderRequestError(f"{provider.name}: an OpenAI-compatible provider needs a base_url.")
        return base_url
    return base_url


def ollama_base_url(host: str) -> str:
    """`<OLLAMA_HOST>/v1`. OLLAMA_HOST follows Ollama's own convention, so it may lack a scheme
    ("localhost:11434") and may already end in /v1."""
    host = (host or OLLAMA_DEFAULT_HOST).strip().rstrip("/")
    if "://" not in host:
        host = f"http://{host}"
    return host if host.endswith("/v1") else f"{host}/v1"
