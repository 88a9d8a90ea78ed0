"""The one outbound policy every URL a tenant gives us goes through (provider base URLs, HTTP
MCP servers, the http_get tool, and whatever later calls out: webhooks, channels, callbacks).

- `addresses`: which IP addresses are refused, and how a URL host is read (inet_aton rules).
- `policy`: `OutboundPolicy`, the operator's allow-lists from settings, DNS checks.
- `transport`: httpx2 transports (sync and async) that check every request, redirects included,
  and connect to the checked address (pinned), with Host/SNI/certificate on the name.

URLs the operator configured (OPENAI_BASE_URL, ANTHROPIC_BASE_URL, EMBEDDING_BASE_URL,
OLLAMA_HOST) are not tenant input: their clients use `restrict_network=False`.
docs/security.md ("Outbound policy") describes the whole.
"""

from __future__ import annotations

from apps.core.outbound.addresses import IPAddress, address_refusal, parse_host
from apps.core.outbound.policy import (
    ALLOW_LIST_HINT,
    EVERYWHERE,
    OutboundBlocked,
    OutboundPolicy,
    ResolutionFailed,
    Resolver,
    override_resolver,
    system_resolver,
)
from apps.core.outbound.transport import (
    AsyncOutboundTransport,
    OutboundTransport,
    async_http_client,
    http_client,
)

__all__ = [
    "ALLOW_LIST_HINT",
    "EVERYWHERE",
    "AsyncOutboundTransport",
    "IPAddress",
    "OutboundBlocked",
    "OutboundPolicy",
    "OutboundTransport",
    "ResolutionFailed",
    "Resolver",
    "address_refusal",
    "async_http_client",
    "blocked_in",
    "http_client",
    "override_resolver",
    "parse_host",
    "system_resolver",
]


def blocked_in(exc: BaseException | None) -> OutboundBlocked | None:
    """The OutboundBlocked behind `exc` (itself, a cause or context, or inside an exception
    group), if any: SDKs wrap what the transport raised."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OutboundBlocked):
            return current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend((current.__cause__, current.__context__))
    return None
