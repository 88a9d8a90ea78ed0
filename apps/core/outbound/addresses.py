"""Which IP addresses a tenant-given URL may reach, and how a URL's host is read.

Pure functions over `ipaddress` objects; the policy (settings, allow-lists, DNS) is in
`apps.core.outbound.policy`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_net = ipaddress.ip_network

# Named first so that refusals say why. They stay refused whatever an operator allows: no
# in-cluster model server lives there, and they hand out the machine's cloud credentials.
METADATA_ADDRESSES = {
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
LOOPBACK_NETWORKS = (_net("127.0.0.0/8"), _net("::1/128"))
_NAT64 = _net("64:ff9b::/96")
_IPV4_COMPATIBLE = _net("::/96")
_UNSPECIFIED_AND_LOOPBACK_V6 = _net("::/127")  # inside ::/96 but not IPv4-compatible addresses


def address_refusal(ip: IPAddress, *, allow_loopback: bool = False, allow_networks: Iterable[IPNetwork] = ()) -> str:
    """Why `ip` is off limits, or "" when it may be connected to.

    `allow_loopback` and `allow_networks` are the operator's exceptions; metadata addresses are
    refused whatever they say, and an IPv6 form that carries an IPv4 address is judged by the
    address inside (so allowing `::/0` does not let `::ffff:169.254.169.254` through)."""
    allow_networks = tuple(allow_networks)
    if ip in METADATA_ADDRESSES:
        return METADATA_ADDRESSES[ip]
    if isinstance(ip, ipaddress.IPv6Address):
        # Mapped (::ffff:a.b.c.d), compatible (::a.b.c.d) and well-known NAT64 (64:ff9b::a.b.c.d)
        # reach that IPv4 host. Python calls them all "reserved", so they must not fall through.
        embedded = ip.ipv4_mapped or (_low_v4(ip) if ip in _NAT64 else None)
        if embedded is None and ip in _IPV4_COMPATIBLE and ip not in _UNSPECIFIED_AND_LOOPBACK_V6:
            embedded = _low_v4(ip)
        if embedded is not None:
            inner = address_refusal(embedded, allow_loopback=allow_loopback, allow_networks=allow_networks)
            return f"an IPv6 form of {embedded}: {inner}" if inner else ""
    if allow_loopback and any(ip in net for net in LOOPBACK_NETWORKS):
        return ""
    if any(ip.version == net.version and ip in net for net in allow_networks):
        return ""
    if isinstance(ip, ipaddress.IPv4Address):
        return _listed_refusal(ip, _BLOCKED_V4)
    # 6to4 and Teredo tunnel to the IPv4 addresses they embed; those must be public too.
    tunnelled = [ip.sixtofour] if ip.sixtofour else list(ip.teredo or ())
    for inner_ip in tunnelled:
        inner = address_refusal(inner_ip)
        if inner:
            return f"a 6to4/Teredo tunnel to {inner_ip}: {inner}"
    return _listed_refusal(ip, _BLOCKED_V6)


def _listed_refusal(ip: IPAddress, blocked: tuple) -> str:
    for net, label in blocked:
        if ip in net:
            return label
    # Whatever else the special-purpose registries hold (Teredo itself, 2001::/23, later additions).
    return "" if ip.is_global else "not a globally routable address"


def _low_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


# A host made only of numeric labels (decimal, octal with a leading 0, hex with 0x) is an IPv4
# address to the C library: getaddrinfo() reads "2130706433", "0x7f.1", "017700000001" and
# "127.1" all as 127.0.0.1 without asking DNS.
_NUMERIC_LABEL = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")


class HostSpellingError(ValueError):
    """A host that looks like a number but is no address the C library would accept either."""


def parse_host(host: str) -> IPAddress | None:
    """The address a URL host spells, however it spells it; None for a host name.

    IPv4 spellings are decided by `socket.inet_aton`, the very parser getaddrinfo() uses for
    numeric hosts, so no spelling means one thing here and another to the connection."""
    host = host.strip().strip("[]")
    if ":" in host:  # an IPv6 literal; its zone ("%25eth0" in a URL) picks an interface, not a host
        try:
            return ipaddress.IPv6Address(host.replace("%25", "%").split("%", 1)[0])
        except ValueError as exc:
            raise HostSpellingError(f"'{host}' is not a valid IPv6 address.") from exc
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if not name or not all(_NUMERIC_LABEL.match(label) for label in labels):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError as exc:
        raise HostSpellingError(f"'{host}' is neither a host name nor a valid IPv4 address.") from exc


def parse_answer(answer: str) -> IPAddress:
    """An address as a resolver returns it; getaddrinfo writes scoped IPv6 as "fe80::1%eth0"."""
    return ipaddress.ip_address(answer.split("%", 1)[0])
