"""The one way tools reach the network: an HTTP client that cannot be pointed at the platform's
own insides (server-side request forgery).

Every hop, redirects included, goes through the outbound policy (apps/core/outbound): only
`http` and `https` URLs without credentials; the host name is resolved once per connection and
every address is checked (loopback, private, link-local, CGNAT, metadata, multicast, reserved,
unspecified, and IPv6 or numeric spellings of those are refused unless the operator allowed
them with the OUTBOUND_ALLOW_* settings); the connection goes to the checked address itself,
while the Host header, TLS SNI and certificate check use the host name.

Redirects are followed here, at most `MAX_REDIRECTS`, each one going through the same checks.
The body is streamed and reading stops at `max_bytes`; the whole call, every hop included, has
one time budget (checked between reads; a single connect or read waits at most what was left
of it when its hop began).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import ssl
import time
from dataclasses import dataclass

import httpx2
from django.conf import settings

from apps.core import outbound
from apps.tools.registry import ToolError

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "agentplatform-http-tool/1.0"

IPAddress = outbound.IPAddress
# (host, port) -> the addresses the host resolves to, as strings. Injectable so tests can play
# DNS without a network; production uses the system resolver.
Resolver = outbound.Resolver


class BlockedDestination(ToolError):
    """The URL, or one of its redirects, points somewhere tools may not go."""


def validate_address(address: str | IPAddress, *, allow_loopback: bool = False) -> IPAddress:
    """The address, parsed, when tools may connect to it; BlockedDestination otherwise. Strict:
    the operator's allow-lists are not consulted (`allow_loopback` is for tests)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    reason = outbound.address_refusal(ip, allow_loopback=allow_loopback)
    if reason:
        raise BlockedDestination(f"{ip} is {reason}.")
    return ip


def system_resolver(host: str, port: int) -> list[str]:
    try:
        return outbound.system_resolver(host, port)
    except outbound.ResolutionFailed as exc:
        raise ToolError(str(exc)) from exc


# --- the client ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchedResponse:
    url: str  # the final URL, after redirects, with its host name (never the address)
    status: int
    content_type: str
    content: bytes  # at most max_bytes
    truncated: bool  # the body was longer than max_bytes and was cut there
    encoding: str | None = None  # the charset the server declared, if any

    @property
    def text(self) -> str:
        # A body cut at max_bytes can end inside a multi-byte character: replace, never fail.
        try:
            return self.content.decode(self.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")


class SafeHttpClient:
    """GET requests under the outbound policy. See the module docstring for what it checks."""

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        allow_loopback: bool | None = None,
        timeout: float | None = None,
        max_redirects: int = MAX_REDIRECTS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`resolver` and `allow_loopback` override DNS and OUTBOUND_ALLOW_LOOPBACK (tests
        against a local server). `ssl_context` lets tests trust a local CA; there is
        deliberately no way to switch certificate checks off."""
        self.resolver = resolver
        self.allow_loopback = allow_loopback
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.ssl_context = ssl_context

    def policy(self) -> outbound.OutboundPolicy:
        policy = outbound.OutboundPolicy.from_settings()
        if self.resolver is not None:
            policy = policy.replace(resolver=self.resolver)
        if self.allow_loopback is not None:
            policy = policy.replace(allow_loopback=self.allow_loopback)
        return policy

    def get(self, url: str, *, max_bytes: int | None = None) -> FetchedResponse:
        max_bytes = settings.HTTP_TOOL_MAX_BYTES if max_bytes is None else max_bytes
        budget = settings.HTTP_TOOL_TIMEOUT_SECONDS if self.timeout is None else self.timeout
        deadline = time.monotonic() + budget
        policy = self.policy()
        current = _parse(url)
        # One client for the call: its pool is keyed by host name, so a connection opened (and
        # TLS-verified) for one name is never reused for another.
        transport = outbound.OutboundTransport(policy=policy, verify=self.ssl_context or _default_ssl_context())
        with httpx2.Client(transport=transport, follow_redirects=False, trust_env=False) as client:
            for hop in range(self.max_redirects + 1):
                response = self._fetch(
                    client, policy, current, max_bytes=max_bytes, deadline=deadline, budget=budget, hop=hop
                )
                if isinstance(response, FetchedResponse):
                    return response
                current = response  # the next hop
        raise ToolError(f"Too many redirects (more than {self.max_redirects}).")

    def _fetch(
        self,
        client: httpx2.Client,
        policy: outbound.OutboundPolicy,
        url: httpx2.URL,
        *,
        max_bytes: int,
        deadline: float,
        budget: float,
        hop: int,
    ) -> FetchedResponse | httpx2.URL:
        """One hop: the response, or the URL it redirects to."""
        what = f"redirect to {url}: " if hop else ""
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            # Compressed bodies would be inflated before max_bytes could stop them.
            "Accept-Encoding": "identity",
        }
        try:
            policy.check_url(url, what=what)
            with client.stream("GET", url, headers=headers, timeout=_remaining(deadline, budget)) as response:
                return self._read(url, response, max_bytes=max_bytes, deadline=deadline, budget=budget)
        except outbound.OutboundBlocked as exc:
            message = str(exc)
            if hop and what not in message:  # refused at connect time, after the URL check
                message = f"Blocked: {what}{message.removeprefix('Blocked: ')}"
            raise BlockedDestination(message) from exc
        except httpx2.TimeoutException as exc:
            raise _timed_out(budget) from exc
        except httpx2.ConnectError as exc:
            raise ToolError(f"Could not connect to {url.host}: {exc}") from exc
        except httpx2.HTTPError as exc:
            raise ToolError(f"The request to {url.host} failed: {exc}") from exc

    def _read(
        self, url: httpx2.URL, response: httpx2.Response, *, max_bytes: int, deadline: float, budget: float
    ) -> FetchedResponse | httpx2.URL:
        if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
            try:
                return url.join(response.headers["location"])
            except httpx2.InvalidURL as exc:
                raise ToolError(f"{url.host} redirected to an invalid URL: {exc}") from exc
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ToolError(f"The server sent a '{encoding}'-compressed body although none was asked for.")
        body = bytearray()
        truncated = False
        for chunk in response.iter_raw():
            # httpx's timeouts apply per read (each read waits at most what was left of the budget
            # when the hop started); the budget is for the whole call, so it is checked here too.
            if time.monotonic() > deadline:
                raise _timed_out(budget)
            body += chunk
            if len(body) > max_bytes:
                truncated = True
                del body[max_bytes:]
                break
        return FetchedResponse(
            url=str(url),
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            content=bytes(body),
            truncated=truncated,
            encoding=response.charset_encoding,
        )


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Built once: loading the CA bundle costs more than a small request. httpx's own default
    # (certifi, hostname checks on); shared contexts are safe to wrap sockets from many threads.
    return httpx2.create_ssl_context()


def _parse(url: str) -> httpx2.URL:
    try:
        return httpx2.URL(url)
    except httpx2.InvalidURL as exc:
        raise ToolError(f"Not a valid URL: {exc}") from exc


def _remaining(deadline: float, budget: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timed_out(budget)
    return remaining


def _timed_out(budget: float) -> ToolError:
    return ToolError(f"The request timed out (limit {budget:g} s for the whole call, redirects included).")
