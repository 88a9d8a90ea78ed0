"""The outbound policy (apps/core/outbound): what it refuses, that a refused destination is
never connected to, redirects, pinning, and the operator's allow-lists."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx2
import pytest

from apps.core import outbound
from apps.core.outbound import OutboundBlocked, OutboundPolicy, address_refusal, parse_host
from tests.stubs.listener import hostile_urls, http_response

STRICT = OutboundPolicy()


def hostile_ids(urls):
    return [url.split("//", 1)[1].split("/", 1)[0] for url in urls]


# --- reading hosts the way the C library does ------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("93.184.216.34", "93.184.216.34"),
    ],
)
def test_numeric_hosts_are_read_with_inet_aton_semantics(host, address):
    assert parse_host(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "cafe.face", "ollama", "1.example", "0x7f.example"])
def test_host_names_are_names(host):
    assert parse_host(host) is None


@pytest.mark.parametrize("url", ["http://1.2.3.4.5/", "http://4294967296/", "http://0x1ffffffff/"])
def test_numeric_hosts_that_are_no_address_are_refused(url):
    with pytest.raises(OutboundBlocked, match="neither a host name nor a valid IPv4 address"):
        STRICT.check_url(url)


# --- the hostile table -------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(hostile_urls(1))), ids=hostile_ids(hostile_urls(1)))
def test_every_hostile_url_is_refused_before_connecting(index, listener, fake_dns):
    url = hostile_urls(listener.port)[index]
    with pytest.raises(OutboundBlocked, match=r"^Blocked: "):
        STRICT.check_destination(url)
    with outbound.http_client(restrict_network=True) as client, pytest.raises(OutboundBlocked):
        client.get(url, timeout=2)
    assert listener.connections == 0


@pytest.mark.parametrize("index", range(len(hostile_urls(1))), ids=hostile_ids(hostile_urls(1)))
def test_the_async_transport_refuses_the_same_table(index, listener, fake_dns):
    url = hostile_urls(listener.port)[index]

    async def fetch():
        async with outbound.async_http_client(restrict_network=True) as client:
            await client.get(url, timeout=2)

    with pytest.raises(OutboundBlocked):
        asyncio.run(fetch())
    assert listener.connections == 0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://user:pw@example.com/", "credentials"),
    ],
)
def test_other_schemes_and_credentials_are_refused(url, reason):
    with pytest.raises(OutboundBlocked, match=reason):
        STRICT.check_url(url)


def test_unix_sockets_are_refused():
    transport = outbound.OutboundTransport()
    with pytest.raises(OutboundBlocked, match="Unix sockets"):
        transport._pool._network_backend.connect_unix_socket("/var/run/docker.sock")


# --- redirects, rebinding, pinning -----------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://metadata.test/", "http://0x7f.1:{port}/", "http://[::1]/"],
)
def test_a_redirect_to_an_internal_address_is_refused_and_not_followed(target, listener, fake_dns, settings):
    """public.test plays a public site (it is the listener, allowed by name) that redirects."""
    settings.OUTBOUND_ALLOW_HOSTS = ["public.test"]
    fake_dns["public.test"] = ["127.0.0.1"]
    listener.response = http_response("302 Found", headers={"Location": target.format(port=listener.port)})
    with outbound.http_client(restrict_network=True, follow_redirects=True) as client, pytest.raises(OutboundBlocked):
        client.get(listener.url("/start", host="public.test"), timeout=2)
    assert listener.connections == 1  # the public hop only
    assert listener.requests[0]["line"] == "GET /start HTTP/1.1"


def test_each_connection_resolves_again_so_rebinding_reaches_nothing(listener, fake_dns):
    """Checked while the name pointed outside, then the name is rebound to loopback."""
    url = f"http://rebind.test:{listener.port}/"
    fake_dns["rebind.test"] = ["93.184.216.34"]
    STRICT.check_destination(url)
    fake_dns["rebind.test"] = ["127.0.0.1"]
    with outbound.http_client(restrict_network=True) as client, pytest.raises(OutboundBlocked, match="loopback"):
        client.get(url, timeout=2)
    assert listener.connections == 0


def test_the_connection_goes_to_the_checked_address_with_the_name_in_the_host_header(listener, settings):
    lookups = []

    def dns(host, port):
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["10.9.9.9"]  # a second answer is never asked for

    settings.OUTBOUND_ALLOW_LOOPBACK = True
    listener.response = http_response("200 OK", body=b"hello")
    with outbound.override_resolver(dns), outbound.http_client(restrict_network=True) as client:
        response = client.get(listener.url("/", host="pinned.test"), timeout=2)
    assert response.text == "hello"
    assert lookups == ["pinned.test"]
    assert listener.requests[0]["host"] == f"pinned.test:{listener.port}"


def test_one_refused_answer_among_public_ones_refuses_the_host(fake_dns):
    fake_dns["mixed.test"] = ["93.184.216.34", "10.0.0.1"]
    with pytest.raises(OutboundBlocked, match=r"mixed\.test resolves to 10\.0\.0\.1, which is a private address"):
        STRICT.check_destination("http://mixed.test/")


def test_a_name_that_does_not_resolve_yet_is_accepted_at_registration(fake_dns):
    assert STRICT.check_destination("http://ollama.svc.invalid:11434/v1").host == "ollama.svc.invalid"


def test_clients_that_already_exist_follow_a_changed_setting(listener, settings):
    listener.response = http_response("200 OK", body=b"ok")
    client = outbound.http_client(restrict_network=True)
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(OutboundBlocked):
        client.get(listener.url(), timeout=2)
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    assert client.get(listener.url(), timeout=2).text == "ok"
    client.close()


def test_an_unrestricted_client_is_a_plain_one(listener):
    """restrict_network=False is for URLs the operator configured: no policy at all."""
    listener.response = http_response("200 OK", body=b"operator")
    with outbound.http_client(restrict_network=False) as client:
        assert client.get(listener.url(), timeout=2).text == "operator"
    assert isinstance(client._transport, httpx2.HTTPTransport)
    assert not isinstance(client._transport, outbound.OutboundTransport)


# --- the operator's allow-lists --------------------------------------------------------------------


def test_allowed_cidrs_let_in_cluster_and_loopback_destinations_through(listener, settings, fake_dns):
    settings.OUTBOUND_ALLOW_PRIVATE_CIDRS = ["10.0.0.0/8", "127.0.0.0/8"]
    policy = OutboundPolicy.from_settings()
    fake_dns["ollama.cluster.test"] = ["10.1.2.3"]
    assert policy.resolve("ollama.cluster.test", 11434) == [ipaddress.ip_address("10.1.2.3")]
    listener.response = http_response("200 OK", body=b"in cluster")
    with outbound.http_client(restrict_network=True) as client:
        assert client.get(listener.url(), timeout=2).text == "in cluster"
    assert listener.connections == 1
    # Outside the allowed ranges nothing changed.
    for url in ("http://192.168.1.1/", "http://100.64.0.1/", "http://[fd00::1]/"):
        with pytest.raises(OutboundBlocked):
            policy.check_url(url)


@pytest.mark.parametrize("cidrs", [["169.254.0.0/16"], ["0.0.0.0/0", "::/0"], ["100.100.100.0/24", "fd00::/8"]])
@pytest.mark.parametrize(
    "address", ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "100.100.100.200", "64:ff9b::a9fe:a9fe"]
)
def test_metadata_addresses_stay_refused_whatever_the_allow_list(cidrs, address, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_CIDRS = cidrs
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    assert "metadata" in OutboundPolicy.from_settings().refusal(ipaddress.ip_address(address))


def test_allowed_hosts_may_resolve_anywhere_but_to_metadata(settings, fake_dns):
    settings.OUTBOUND_ALLOW_HOSTS = ["ollama", ".svc.cluster.local"]
    fake_dns.update({"ollama": ["10.0.0.5"], "m.svc.cluster.local": ["127.0.0.1"], "evil": ["10.0.0.5"]})
    fake_dns["bad.svc.cluster.local"] = ["169.254.169.254"]
    policy = OutboundPolicy.from_settings()
    assert policy.resolve("ollama", 11434) == [ipaddress.ip_address("10.0.0.5")]
    assert policy.resolve("m.svc.cluster.local", 80) == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(OutboundBlocked, match="private"):
        policy.resolve("evil", 80)
    with pytest.raises(OutboundBlocked, match="metadata"):
        policy.resolve("bad.svc.cluster.local", 80)


def test_loopback_allowance_covers_loopback_only(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    policy = OutboundPolicy.from_settings()
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) == ""
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) == ""
    for other in ("10.0.0.1", "169.254.169.254", "0.0.0.0", "fe80::1"):  # noqa: S104 - refused, not bound
        assert policy.refusal(ipaddress.ip_address(other))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"])
def test_public_addresses_pass(address):
    assert address_refusal(ipaddress.ip_address(address)) == ""
