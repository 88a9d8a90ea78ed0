"""The outbound policy: which destinations a tenant-given URL may reach.

Built from settings (OUTBOUND_ALLOW_LOOPBACK, OUTBOUND_ALLOW_PRIVATE_CIDRS, OUTBOUND_ALLOW_HOSTS)
each time it is asked for, so a changed setting applies to clients that already exist (the
provider client cache, MCP connections) at their next connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx2
from django.conf import settings

from apps.core.outbound.addresses import (
    HostSpellingError,
    IPAddress,
    IPNetwork,
    address_refusal,
    parse_answer,
    parse_host,
)

# (host, port) -> the addresses the host resolves to, as strings.
Resolver = Callable[[str, int], Iterable[str]]

ALLOW_LIST_HINT = (
    "an operator can allow in-cluster destinations with OUTBOUND_ALLOW_PRIVATE_CIDRS or OUTBOUND_ALLOW_HOSTS"
)


# Every address but the metadata services (which address_refusal checks before any allowance).
EVERYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


class OutboundBlocked(Exception):
    """The destination is refused by the outbound policy. The message says why and is safe to
    show the tenant who gave the URL (it names only what they gave and what it resolved to)."""


class ResolutionFailed(OSError):
    """The host name did not resolve; not a refusal (the name may exist later)."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionFailed(f"Could not resolve host '{host}'.") from exc
    return [info[4][0] for info in infos]


_resolver_override: Resolver | None = None


@contextlib.contextmanager
def override_resolver(resolver: Resolver) -> Iterator[None]:
    """Play DNS for every policy that has no resolver of its own (tests: no network here). It is
    process-wide on purpose: MCP connections resolve on their own loop thread."""
    global _resolver_override
    previous, _resolver_override = _resolver_override, resolver
    try:
        yield
    finally:
        _resolver_override = previous


@dataclass(frozen=True)
class OutboundPolicy:
    allow_loopback: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: tuple[str, ...] = ()  # lower case; ".example.internal" also matches subdomains
    resolver: Resolver | None = None

    @classmethod
    def from_settings(cls) -> OutboundPolicy:
        return _policy_from(
            bool(settings.OUTBOUND_ALLOW_LOOPBACK),
            tuple(settings.OUTBOUND_ALLOW_PRIVATE_CIDRS),
            tuple(settings.OUTBOUND_ALLOW_HOSTS),
        )

    def replace(self, **changes) -> OutboundPolicy:
        return dataclasses.replace(self, **changes)

    # --- checks ----------------------------------------------------------------------------------

    def refusal(self, ip: IPAddress, *, host: str = "") -> str:
        """Why `ip` may not be connected to ("" when it may). An allowed host name may resolve
        anywhere but to a metadata address."""
        if host and self.host_allowed(host):
            return address_refusal(ip, allow_loopback=True, allow_networks=EVERYWHERE)
        return address_refusal(ip, allow_loopback=self.allow_loopback, allow_networks=self.allow_networks)

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == entry or (entry.startswith(".") and host.endswith(entry)) for entry in self.allow_hosts)

    def check_url(self, url: str | httpx2.URL, *, what: str = "") -> httpx2.URL:
        """The parsed URL when its shape is acceptable (http(s), a host, no credentials, no odd
        number spelling, no refused address literal); OutboundBlocked otherwise. Names are not
        resolved here: `resolve` does that for each connection."""
        try:
            parsed = url if isinstance(url, httpx2.URL) else httpx2.URL(str(url))
        except (httpx2.InvalidURL, TypeError) as exc:
            raise OutboundBlocked(f"Blocked: {what}not a valid URL ({exc}).") from exc
        if parsed.scheme not in ("http", "https"):
            raise OutboundBlocked(f"Blocked: {what}{_shown(parsed)}: only http and https URLs are allowed.")
        if not parsed.host:
            raise OutboundBlocked(f"Blocked: {what}the URL has no host.")
        if parsed.userinfo:
            # Credentials in a URL go to whatever server it names, and end up in logs.
            raise OutboundBlocked(f"Blocked: {what}URL with credentials (user:password@) in it.")
        self.literal_address(parsed.host, what=what)
        return parsed

    def literal_address(self, host: str, *, what: str = "") -> IPAddress | None:
        """The checked address a host spells, None for a name; OutboundBlocked when refused."""
        try:
            literal = parse_host(host)
        except HostSpellingError as exc:
            raise OutboundBlocked(f"Blocked: {what}{exc}") from exc
        if literal is not None:
            reason = self.refusal(literal)
            if reason:
                spelled = f" ({host} spells {literal})" if literal.version == 4 and host != str(literal) else ""
                raise OutboundBlocked(f"Blocked: {what}{literal}{spelled} is {reason}.")
        return literal

    def resolve(self, host: str, port: int, *, what: str = "") -> list[IPAddress]:
        """Every address of `host`, all checked: one refused address refuses the host, since
        the connection could land on any of them. ResolutionFailed when the name does not exist."""
        literal = self.literal_address(host, what=what)
        if literal is not None:
            return [literal]
        resolver = self.resolver or _resolver_override or system_resolver
        answers = list(resolver(host, port))
        if not answers:
            raise ResolutionFailed(f"Could not resolve host '{host}'.")
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                ip = parse_answer(answer)
            except ValueError as exc:
                raise ResolutionFailed(f"The resolver returned a non-address for '{host}'.") from exc
            reason = self.refusal(ip, host=host)
            if reason:
                raise OutboundBlocked(f"Blocked: {what}{host} resolves to {ip}, which is {reason}.")
            if ip not in addresses:
                addresses.append(ip)
        return addresses

    def check_destination(self, url: str, *, what: str = "") -> httpx2.URL:
        """Validation at registration: the URL's shape and, when its name resolves now, where it
        points. A name that does not resolve yet is accepted: each connection checks again."""
        parsed = self.check_url(url, what=what)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        with contextlib.suppress(ResolutionFailed):
            self.resolve(parsed.host, port, what=what)
        return parsed


def _shown(url: httpx2.URL) -> str:
    return str(url.copy_with(username=None, password=None))[:200]


@functools.lru_cache(maxsize=32)
def _policy_from(allow_loopback: bool, cidrs: tuple[str, ...], hosts: tuple[str, ...]) -> OutboundPolicy:
    return OutboundPolicy(
        allow_loopback=allow_loopback,
        allow_networks=parse_networks(cidrs),
        allow_hosts=tuple(h.strip().lower().rstrip(".") for h in hosts if h.strip()),
    )


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """OUTBOUND_ALLOW_PRIVATE_CIDRS as networks (settings.py refuses bad entries at start)."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())
