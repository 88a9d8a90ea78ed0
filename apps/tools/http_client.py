"""The one way tools reach the network: an HTTP client that cannot be pointed at the platform's
own insides (server-side request forgery).

For every hop, redirects included:

1. only `http` and `https` URLs, without credentials in them;
2. the host name is resolved once, and every address it resolves to is checked: loopback,
   private, link-local, CGNAT, metadata, multicast, reserved and unspecified addresses are
   refused, and so are IPv6 forms that carry such an IPv4 address inside them;
3. the connection goes to the checked address itself, so a second DNS answer (rebinding) cannot
   swap in another one, while the Host header, TLS SNI and certificate check use the host name.

Redirects are followed here, at most `MAX_REDIRECTS`, each one going through the same checks.
The body is streamed and reading stops at `max_bytes`; the whole call, every hop included, has
one time budget (checked between reads; a single connect or read waits at most what was left
of it when its hop began).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
from django.conf import settings

from apps.tools.registry import ToolError

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "agentplatform-http-tool/1.0"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the host resolves to, as strings. Injectable so tests can play
# DNS without a network; production uses the system resolver.
Resolver = Callable[[str, int], Iterable[str]]


class BlockedDestination(ToolError):
    """The URL, or one of its redirects, points somewhere tools may not go."""


# --- address checks ------------------------------------------------------------------------------

_net = ipaddress.ip_network

# Named first so that refusals say why; `is_global` below catches whatever else is not public.
_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"): "the cloud metadata service",
    ipaddress.ip_address("fd00:ec2::254"): "the cloud metadata service (AWS IPv6)",
    ipaddress.ip_address("100.100.100.200"): "the cloud metadata service (Alibaba)",
}
_BLOCKED_V4 = (
    (_net("0.0.0.0/8"), "an unspecified ('this network') address"),
    (_net("127.0.0.0/8"), "a loopback address"),
    (_net("10.0.0.0/8"), "a private address (RFC 1918)"),
    (_net("172.16.0.0/12"), "a private address (RFC 1918)"),
    (_net("192.168.0.0/16"), "a private address (RFC 1918)"),
    (_net("100.64.0.0/10"), "a carrier-grade NAT address (RFC 6598)"),
    (_net("169.254.0.0/16"), "a link-local address"),
    (_net("192.0.0.0/24"), "an IETF protocol address"),
    (_net("192.0.2.0/24"), "a documentation address"),
    (_net("198.51.100.0/24"), "a documentation address"),
    (_net("203.0.113.0/24"), "a documentation address"),
    (_net("198.18.0.0/15"), "a benchmarking address"),
    (_net("224.0.0.0/4"), "a multicast address"),
    (_net("240.0.0.0/4"), "a reserved address"),
)
_BLOCKED_V6 = (
    (_net("::/128"), "the unspecified address"),
    (_net("::1/128"), "a loopback address"),
    (_net("fe80::/10"), "a link-local address"),
    (_net("fec0::/10"), "a site-local address"),
    (_net("fc00::/7"), "a unique-local address"),
    (_net("ff00::/8"), "a multicast address"),
    (_net("100::/64"), "a discard-only address"),
    (_net("2001:db8::/32"), "a documentation address"),
    (_net("64:ff9b:1::/48"), "a local-use NAT64 address"),
)
_LOOPBACK = (_net("127.0.0.0/8"), _net("::1/128"))
_NAT64 = _net("64:ff9b::/96")
_IPV4_COMPATIBLE = _net("::/96")
_UNSPECIFIED_AND_LOOPBACK_V6 = _net("::/127")  # inside ::/96 but not IPv4-compatible addresses


def validate_address(address: str | IPAddress, *, allow_loopback: bool = False) -> IPAddress:
    """The address, parsed, when tools may connect to it; BlockedDestination otherwise.

    `allow_loopback` exists for tests that talk to a local server; nothing reads it from settings.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    reason = _refusal(ip, allow_loopback=allow_loopback)
    if reason:
        raise BlockedDestination(f"{ip} is {reason}.")
    return ip


def _refusal(ip: IPAddress, *, allow_loopback: bool) -> str:
    """Why `ip` is off limits, or "" when it is not."""
    if allow_loopback and any(ip in net for net in _LOOPBACK):
        return ""
    if ip in _METADATA_ADDRESSES:
        return _METADATA_ADDRESSES[ip]
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_refusal(ip)

    # IPv6 forms that carry an IPv4 address reach that IPv4 host, so that is the one to judge.
    # Mapped (::ffff:a.b.c.d), compatible (::a.b.c.d) and well-known NAT64 (64:ff9b::a.b.c.d) are
    # only as good as the address inside; Python calls them all "reserved", so they must not fall
    # through to the checks below.
    embedded = ip.ipv4_mapped or _embedded_v4(ip, _NAT64)
    if embedded is None and ip in _IPV4_COMPATIBLE and ip not in _UNSPECIFIED_AND_LOOPBACK_V6:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if embedded is not None:
        inner = _refusal(embedded, allow_loopback=allow_loopback)
        return f"an IPv6 form of {embedded}: {inner}" if inner else ""
    # 6to4 and Teredo tunnel to the IPv4 addresses they embed; those must be public too.
    tunnelled = [ip.sixtofour] if ip.sixtofour else list(ip.teredo or ())
    for inner_ip in tunnelled:
        inner = _v4_refusal(inner_ip)
        if inner:
            return f"a 6to4/Teredo tunnel to {inner_ip}: {inner}"
    for net, label in _BLOCKED_V6:
        if ip in net:
            return label
    # Teredo itself, 2001::/23 and whatever is added to the special-purpose registry later.
    return "" if ip.is_global else "not a globally routable address"


def _v4_refusal(ip: ipaddress.IPv4Address) -> str:
    if ip in _METADATA_ADDRESSES:
        return _METADATA_ADDRESSES[ip]
    for net, label in _BLOCKED_V4:
        if ip in net:
            return label
    return "" if ip.is_global else "not a globally routable address"


def _embedded_v4(ip: ipaddress.IPv6Address, prefix: ipaddress.IPv6Network) -> ipaddress.IPv4Address | None:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in prefix else None


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ToolError(f"Could not resolve host '{host}'.") from exc
    return [info[4][0] for info in infos]


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
    """GET requests to public addresses only. See the module docstring for what it checks."""

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        allow_loopback: bool = False,
        timeout: float | None = None,
        max_redirects: int = MAX_REDIRECTS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`allow_loopback` is for tests against a local server only. `ssl_context` lets tests
        trust a local CA; there is deliberately no way to switch certificate checks off."""
        self.resolver = resolver or system_resolver
        self.allow_loopback = allow_loopback
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.ssl_context = ssl_context

    def get(self, url: str, *, max_bytes: int | None = None) -> FetchedResponse:
        max_bytes = settings.HTTP_TOOL_MAX_BYTES if max_bytes is None else max_bytes
        budget = settings.HTTP_TOOL_TIMEOUT_SECONDS if self.timeout is None else self.timeout
        deadline = time.monotonic() + budget
        current = _parse(url)
        for hop in range(self.max_redirects + 1):
            response = self._fetch(current, max_bytes=max_bytes, deadline=deadline, budget=budget, hop=hop)
            if isinstance(response, FetchedResponse):
                return response
            current = response  # the next hop
        raise ToolError(f"Too many redirects (more than {self.max_redirects}).")

    def _fetch(
        self, url: httpx.URL, *, max_bytes: int, deadline: float, budget: float, hop: int
    ) -> FetchedResponse | httpx.URL:
        """One hop: the response, or the URL it redirects to."""
        what = "redirect to " if hop else ""
        _check_url(url, what)
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = self._addresses(host, port, what=f"{what}{url}")

        headers = {
            # httpx would send the address; the server must see the name it was asked for.
            "Host": url.netloc.decode("ascii"),
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            # Compressed bodies would be inflated before max_bytes could stop them.
            "Accept-Encoding": "identity",
        }
        # With sni_hostname, httpcore hands the name to ssl as server_hostname, which is both the
        # SNI sent and the name the certificate is verified against (check_hostname stays on).
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        last_error: Exception | None = None
        for ip in addresses:
            remaining = _remaining(deadline, budget)
            # A client per hop and address: pooled connections are keyed by address, and one
            # opened (and TLS-verified) for another host name must never be reused for this one.
            # trust_env=False: a proxy from the environment would do its own DNS, undoing the pin.
            with httpx.Client(
                timeout=httpx.Timeout(remaining),
                follow_redirects=False,
                trust_env=False,
                verify=self.ssl_context or _default_ssl_context(),
            ) as client:
                try:
                    with client.stream(
                        "GET", url.copy_with(host=str(ip)), headers=headers, extensions=extensions
                    ) as response:
                        return self._read(url, response, max_bytes=max_bytes, deadline=deadline, budget=budget)
                except httpx.ConnectError as exc:
                    # Only failing to connect moves on to the host's next (also checked) address.
                    last_error = exc
                    continue
                except httpx.TimeoutException as exc:
                    raise _timed_out(budget) from exc
                except httpx.HTTPError as exc:
                    raise ToolError(f"The request to {url.host} failed: {exc}") from exc
        raise ToolError(f"Could not connect to {url.host}: {last_error}")

    def _addresses(self, host: str, port: int, *, what: str) -> list[IPAddress]:
        """Every address of `host`, all checked; one bad address refuses the host."""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        answers = [str(literal)] if literal else list(self.resolver(host, port))
        if not answers:
            raise ToolError(f"Could not resolve host '{host}'.")
        addresses = []
        for answer in answers:
            try:
                # getaddrinfo writes scoped IPv6 addresses as "fe80::1%eth0"; the scope is irrelevant.
                ip = ipaddress.ip_address(answer.split("%", 1)[0])
            except ValueError as exc:
                raise ToolError(f"The resolver returned a non-address for '{host}'.") from exc
            reason = _refusal(ip, allow_loopback=self.allow_loopback)
            if reason:
                verb = "is" if literal else "resolves to"
                raise BlockedDestination(f"Blocked: {what} {verb} {ip}, which is {reason}.")
            addresses.append(ip)
        return addresses

    def _read(
        self, url: httpx.URL, response: httpx.Response, *, max_bytes: int, deadline: float, budget: float
    ) -> FetchedResponse | httpx.URL:
        if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
            # Relative redirects resolve against the URL with the host name, not the address.
            try:
                return url.join(response.headers["location"])
            except httpx.InvalidURL as exc:
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
    return httpx.create_ssl_context()


def _parse(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ToolError(f"Not a valid URL: {exc}") from exc


def _check_url(url: httpx.URL, what: str) -> None:
    if url.scheme not in ("http", "https"):
        raise BlockedDestination(f"Blocked: {what}{url}: only http and https URLs are allowed.")
    if not url.host:
        raise ToolError(f"The {what}URL has no host.")
    if url.userinfo:
        # Credentials in a URL would go to whatever server the model picked, and end up in logs.
        raise BlockedDestination(f"Blocked: {what}URL with credentials (user:password@) in it.")


def _remaining(deadline: float, budget: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timed_out(budget)
    return remaining


def _timed_out(budget: float) -> ToolError:
    return ToolError(f"The request timed out (limit {budget:g} s for the whole call, redirects included).")
