"""httpx2 transports that enforce the outbound policy on every request they send.

The SDKs we use (openai, anthropic, mcp) all speak httpx2 and accept a client of ours, so the
policy lives in the transport, below every SDK:

- `handle_request` checks each request's URL (scheme, credentials, host spelling, address
  literals). httpx2 sends every redirect hop through the transport, so followed redirects are
  checked like the first request.
- the connection pool's network backend resolves the host name itself, checks every address,
  and opens the TCP connection to a checked address. Nothing resolves the name a second time,
  so DNS rebinding cannot swap in another address; the pool is keyed by host name, so the Host
  header, TLS SNI and certificate check keep using the name.

Each new connection is resolved and checked again (DNS may change); pooled connections are
reused only for the host name they were opened for.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any

import anyio.to_thread
import httpcore2
import httpx2

from apps.core.outbound.policy import OutboundBlocked, OutboundPolicy, ResolutionFailed

PolicySource = Callable[[], OutboundPolicy]

# httpx2's defaults; the SDKs' own clients use larger pools, which callers pass as `limits`.
DEFAULT_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)


def _source(policy: OutboundPolicy | None) -> PolicySource:
    # No policy given: read the settings at each use, so clients cached per process follow them.
    return (lambda: policy) if policy is not None else OutboundPolicy.from_settings


class _PinnedBackend(httpcore2.NetworkBackend):
    def __init__(self, policy: PolicySource):
        self._policy = policy
        self._inner = httpcore2.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        try:
            addresses = self._policy().resolve(host, port)
        except ResolutionFailed as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        last_error: Exception | None = None
        for ip in addresses:  # every one checked; the next is tried only if connecting fails
            try:
                return self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore2.ConnectError(f"Could not connect to {host}.")

    def connect_unix_socket(self, path: str, timeout=None, socket_options=None) -> httpcore2.NetworkStream:
        raise OutboundBlocked("Blocked: Unix sockets are not an outbound destination.")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncPinnedBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, policy: PolicySource):
        self._policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        policy = self._policy()
        try:
            # getaddrinfo blocks; the event loop must not.
            addresses = await anyio.to_thread.run_sync(policy.resolve, host, port)
        except ResolutionFailed as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        last_error: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore2.ConnectError(f"Could not connect to {host}.")

    async def connect_unix_socket(self, path: str, timeout=None, socket_options=None) -> httpcore2.AsyncNetworkStream:
        raise OutboundBlocked("Blocked: Unix sockets are not an outbound destination.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _ssl_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    # trust_env=False: SSL_CERT_FILE and friends are the operator's, not a tenant's, but a proxy
    # from the environment would resolve names itself and undo the pin, so none is read.
    return verify if isinstance(verify, ssl.SSLContext) else httpx2.create_ssl_context(verify=verify, trust_env=False)


def _pool_options(context: ssl.SSLContext, limits: httpx2.Limits) -> dict:
    """What both pinned pools (sync and async) take from the transport's settings."""
    return {
        "ssl_context": context,
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class OutboundTransport(httpx2.HTTPTransport):
    """A synchronous httpx2 transport under the outbound policy (see the module docstring)."""

    def __init__(
        self,
        *,
        policy: OutboundPolicy | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx2.Limits = DEFAULT_LIMITS,
    ):
        context = _ssl_context(verify)
        super().__init__(verify=context, trust_env=False, limits=limits)
        self._policy = _source(policy)
        self._pool = httpcore2.ConnectionPool(
            **_pool_options(context, limits),
            network_backend=_PinnedBackend(self._policy),
        )

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self._policy().check_url(request.url)
        return super().handle_request(request)


class AsyncOutboundTransport(httpx2.AsyncHTTPTransport):
    """The asynchronous twin of OutboundTransport (the MCP SDK is async)."""

    def __init__(
        self,
        *,
        policy: OutboundPolicy | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx2.Limits = DEFAULT_LIMITS,
    ):
        context = _ssl_context(verify)
        super().__init__(verify=context, trust_env=False, limits=limits)
        self._policy = _source(policy)
        self._pool = httpcore2.AsyncConnectionPool(
            **_pool_options(context, limits),
            network_backend=_AsyncPinnedBackend(self._policy),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._policy().check_url(request.url)
        return await super().handle_async_request(request)


def http_client(*, restrict_network: bool, policy: OutboundPolicy | None = None, **kwargs: Any) -> httpx2.Client:
    """An httpx2.Client; with `restrict_network` (a tenant gave the URL) under the outbound
    policy. `kwargs` go to httpx2.Client (timeout, headers, follow_redirects, ...)."""
    if not restrict_network:
        return httpx2.Client(**kwargs)
    limits = kwargs.pop("limits", DEFAULT_LIMITS)
    transport = OutboundTransport(policy=policy, verify=kwargs.pop("verify", True), limits=limits)
    return httpx2.Client(transport=transport, trust_env=False, **kwargs)


def async_http_client(
    *, restrict_network: bool, policy: OutboundPolicy | None = None, **kwargs: Any
) -> httpx2.AsyncClient:
    """The asynchronous twin of `http_client`."""
    if not restrict_network:
        return httpx2.AsyncClient(**kwargs)
    limits = kwargs.pop("limits", DEFAULT_LIMITS)
    transport = AsyncOutboundTransport(policy=policy, verify=kwargs.pop("verify", True), limits=limits)
    return httpx2.AsyncClient(transport=transport, trust_env=False, **kwargs)
