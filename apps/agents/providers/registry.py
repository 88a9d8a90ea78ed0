"""From a Provider row to a ProviderClient.

Clients are cached per process, keyed by everything that shapes them (endpoint, encrypted key,
options, timeouts): building an SDK client costs milliseconds and its connection pool saves a
TCP/TLS handshake per call, which matters inside the per-turn overhead budget. Changing a
provider's key or options changes the key, so a stale client is never used.

A tenant Provider linked to a platform provider (`provider.platform`) is built from the platform
row alone: its endpoint, key and options; the tenant row's own fields are ignored, so nothing a
tenant can write redirects or re-headers the operator's key. Errors from those clients are
scrubbed of the platform's key, header values and endpoint before anyone sees them. A tenant's
own provider never falls back to anything of the operator's (no OLLAMA_HOST default).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from apps.agents.crypto import SecretDecryptionError, decrypt_secret
from apps.agents.models import PlatformProvider, Provider, ProviderKind
from apps.agents.providers.anthropic_client import ANTHROPIC_DEFAULT_BASE_URL, AnthropicClient
from apps.agents.providers.base import (
    ProbeResult,
    ProviderClient,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailable,
)
from apps.agents.providers.common import ClientOptions
from apps.agents.providers.offline import OfflineClient
from apps.agents.providers.openai_compat import OPENAI_DEFAULT_BASE_URL, OpenAICompatClient

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
    source: Provider | PlatformProvider = provider
    if provider.platform_id is not None:
        source = _usable_platform(provider)
    options = ClientOptions.build(source.options, timeout=timeout, max_retries=max_retries)
    base_url = resolve_base_url(source, name=provider.name)
    # Operator URLs are trusted (in-cluster model servers); a tenant's own endpoint, even the
    # vendor's public one, goes through the outbound policy.
    restrict_network = provider.platform_id is None
    key = (
        restrict_network,
        str(provider.pk),
        str(provider.platform_id or ""),
        source.kind,
        provider.name,
        base_url,
        source.api_key_encrypted,
        json.dumps(source.options or {}, sort_keys=True, default=str),
        options.timeout,
        options.max_retries,
    )
    with _cache_lock:
        client = _cache.get(key)
        if client is not None:
            _cache.move_to_end(key)
            return client
    client = _build(source, name=provider.name, base_url=base_url, options=options)
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


def _usable_platform(provider: Provider) -> PlatformProvider:
    """The platform row behind a link, read fresh (the operator may have changed its key or
    revoked the tenant a moment ago), or a refusal the turn reports as its error."""
    from apps.agents import selectors

    platform = PlatformProvider.objects.filter(pk=provider.platform_id).first()
    if platform is None or platform.pk in selectors.platform_blocked_ids(tenant_id=provider.tenant_id):
        raise ProviderRequestError(
            f"{provider.name}: this platform provider is not available to your organization "
            "(the operator disabled it or has not granted it to you)."
        )
    return platform


def _build(source: Provider | PlatformProvider, *, name: str, base_url: str, options: ClientOptions) -> ProviderClient:
    platform = isinstance(source, PlatformProvider)
    try:
        api_key = decrypt_secret(source.api_key_encrypted)
    except SecretDecryptionError as exc:
        detail = "the platform provider's key cannot be decrypted; tell the operator" if platform else str(exc)
        raise ProviderRequestError(f"{name}: {detail}") from None
    extra: dict[str, Any] = {"restrict_network": not platform}
    if source.kind == ProviderKind.ANTHROPIC:
        client: ProviderClient = AnthropicClient(
            base_url=base_url, api_key=api_key, options=options, name=name, **extra
        )
    elif source.kind in (ProviderKind.OPENAI, ProviderKind.OLLAMA, ProviderKind.OPENAI_COMPATIBLE):
        client = OpenAICompatClient(
            kind=source.kind, base_url=base_url, api_key=api_key, options=options, name=name, **extra
        )
    else:
        raise ProviderRequestError(f"{name}: unknown provider kind {source.kind!r}.")
    if platform:
        netloc = urlsplit(base_url).netloc  # errors often quote only the host ("…to 10.0.0.5:8000")
        secrets = [api_key, base_url, netloc, *options.headers.values()]
        return PlatformClient(client, secrets=secrets)
    return client


def resolve_base_url(provider: Provider | PlatformProvider, *, name: str = "") -> str:
    """The endpoint a provider's client talks to; empty `base_url` means the vendor's public one
    (OpenAI, Anthropic). Ollama and OpenAI-compatible servers must give theirs: a tenant's
    Ollama never defaults to the operator's OLLAMA_HOST (that one is a platform provider)."""
    name = name or provider.name
    base_url = (provider.base_url or "").strip().rstrip("/")
    if provider.kind == ProviderKind.OPENAI:
        return base_url or OPENAI_DEFAULT_BASE_URL
    if provider.kind == ProviderKind.ANTHROPIC:
        # The SDK appends /v1/messages itself; people often paste the URL with /v1.
        return (base_url or ANTHROPIC_DEFAULT_BASE_URL).removesuffix("/v1")
    if provider.kind in (ProviderKind.OLLAMA, ProviderKind.OPENAI_COMPATIBLE):
        if not base_url:
            raise ProviderRequestError(f"{name}: this provider needs a base_url (the server's …/v1 URL).")
        return base_url
    return base_url


class PlatformClient:
    """A link's client to a platform provider.

    Its errors never carry the platform's key, header values or endpoint: SDK errors can quote
    the request URL, and an upstream body can echo a header. The error's class is kept (the
    breaker and the engine decide on it); its chain is dropped, so a logged traceback does not
    carry the original text either. Spend is not metered here: the turn engine settles every
    call's cost through apps/conversations/budgets.budget_settle, which adds it to the tenant's
    PlatformSpend for the month in the same statement as the Turn row (cancelled calls too)."""

    def __init__(self, inner: ProviderClient, *, secrets: list[str]):
        self._inner = inner
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self.kind = inner.kind
        self.name = inner.name

    def __getattr__(self, attribute: str):
        # Anything else the wrapped client offers (restrict_network, ...) reads through.
        return getattr(self._inner, attribute)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[platform]")
        return text

    def _reraise(self, exc: ProviderError):
        message = self.scrub(str(exc))
        try:
            scrubbed = type(exc)(message)
        except TypeError:  # a subclass with a constructor of its own: keep the family
            scrubbed = (ProviderRequestError if isinstance(exc, ProviderRequestError) else ProviderUnavailable)(message)
        raise scrubbed from None

    def chat(self, **kwargs):
        try:
            return self._inner.chat(**kwargs)
        except ProviderError as exc:
            self._reraise(exc)

    def list_models(self):
        try:
            return self._inner.list_models()
        except ProviderError as exc:
            self._reraise(exc)

    def probe(self) -> ProbeResult:
        try:
            result = self._inner.probe()
        except ProviderError as exc:
            self._reraise(exc)
        return ProbeResult(
            reachable=result.reachable,
            latency_ms=result.latency_ms,
            error=self.scrub(result.error),
            models_seen=result.models_seen,
        )


def ollama_base_url(host: str) -> str:
    """`<OLLAMA_HOST>/v1`. OLLAMA_HOST follows Ollama's own convention, so it may lack a scheme
    ("localhost:11434") and may already end in /v1."""
    host = (host or OLLAMA_DEFAULT_HOST).strip().rstrip("/")
    if "://" not in host:
        host = f"http://{host}"
    return host if host.endswith("/v1") else f"{host}/v1"
