from __future__ import annotations

import ipaddress
import json
import re

import pytest

from apps.tools.builtins.http_get import build_http_get_tool, http_get_tool
from apps.tools.http_client import BlockedDestination, SafeHttpClient, validate_address
from apps.tools.registry import ToolContext, ToolError, execute_tool


class FakeDNS:
    """A resolver with fixed answers that counts its lookups."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[host]


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} should not have been resolved")


# --- refusals before any connection --------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to refuse, not one to bind
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "documentation"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("::ffff:10.0.0.1", "IPv6 form of 10.0.0.1: a private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::10.0.0.1", "IPv6 form of 10.0.0.1: a private"),
        ("64:ff9b::a00:1", "IPv6 form of 10.0.0.1: a private"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("2002:a00:1::1", "6to4/Teredo tunnel to 10.0.0.1: a private"),
        # Teredo: client 10.0.0.1 (stored inverted in the last 32 bits), server 65.54.227.120.
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "6to4/Teredo tunnel to 10.0.0.1: a private"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_each_internal_address_class_is_refused(address, reason):
    dns = FakeDNS({"innocent.example": [address]})
    client = SafeHttpClient(resolver=dns)
    with pytest.raises(BlockedDestination, match=re.escape(reason)):
        client.get("http://innocent.example/")
    assert dns.lookups == ["innocent.example"]


def test_one_internal_answer_among_public_ones_refuses_the_host():
    client = SafeHttpClient(resolver=FakeDNS({"mixed.example": ["93.184.216.34", "10.0.0.1"]}))
    with pytest.raises(BlockedDestination, match=r"resolves to 10\.0\.0\.1, which is a private address"):
        client.get("https://mixed.example/")


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_pass_the_check(address):
    assert validate_address(address) == ipaddress.ip_address(address)


def test_loopback_allowance_covers_loopback_only():
    assert validate_address("127.0.0.1", allow_loopback=True)
    assert validate_address("::1", allow_loopback=True)
    for other in ("10.0.0.1", "169.254.169.254", "0.0.0.0"):  # noqa: S104 - refused, not bound
        with pytest.raises(BlockedDestination):
            validate_address(other, allow_loopback=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[::1]:8000/",
        "http://10.1.2.3:8080/admin",
    ],
)
def test_address_literals_are_checked_without_dns(url):
    with pytest.raises(BlockedDestination, match=r"Blocked: .* is "):
        SafeHttpClient(resolver=no_dns).get(url)


@pytest.mark.parametrize("url", ["http://localhost/", "http://2130706433/", "http://0x7f.1/", "http://127.1/"])
def test_names_that_the_system_resolver_maps_to_loopback_are_refused(url):
    with pytest.raises(BlockedDestination, match="loopback"):
        SafeHttpClient().get(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/file", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com/", "only http and https"),
        ("http://user:secret@example.com/", "credentials"),
        ("https://token@example.com/", "credentials"),
    ],
)
def test_other_schemes_and_credentials_in_urls_are_refused(url, reason):
    with pytest.raises(BlockedDestination, match=reason):
        SafeHttpClient(resolver=no_dns).get(url)


# --- against a real local server -----------------------------------------------------------------


def local_client(http_server, **kwargs) -> SafeHttpClient:
    """A client for which `public.test` is the local server, as if it were a public site."""
    dns = FakeDNS({"public.test": ["127.0.0.1"], "internal.test": ["10.1.2.3"], **kwargs.pop("answers", {})})
    return SafeHttpClient(resolver=dns, allow_loopback=True, **kwargs)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "the cloud metadata service"),
        ("http://10.0.0.1/", "private address"),
        ("http://internal.test/", r"resolves to 10\.1\.2\.3"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("file:///etc/passwd", "only http and https"),
        ("http://admin:admin@public.test/", "credentials"),
    ],
)
def test_a_redirect_to_an_internal_destination_is_refused(http_server, target, reason):
    client = local_client(http_server)
    with pytest.raises(BlockedDestination, match=f"redirect to .*{reason}"):
        client.get(http_server.url(f"/redirect?to={target}", host="public.test"))


def test_redirects_are_followed_with_the_host_name(http_server):
    response = local_client(http_server).get(http_server.url("/redirect?to=/echo", host="public.test"))
    assert response.status == 200
    assert response.url == http_server.url("/echo", host="public.test")
    assert response.text == f"host=public.test:{http_server.port}"


def test_redirect_loops_stop_after_five(http_server):
    with pytest.raises(ToolError, match="Too many redirects"):
        local_client(http_server).get(http_server.url("/loop", host="public.test"))


def test_the_checked_address_is_the_one_connected_to(http_server):
    """A second DNS answer pointing inside (rebinding) is never asked for."""
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])
    lookups = []

    def rebinding_dns(host: str, port: int) -> list[str]:
        lookups.append(host)
        return next(answers)

    client = SafeHttpClient(resolver=rebinding_dns, allow_loopback=True)
    response = client.get(http_server.url("/echo", host="rebind.test"))
    assert response.text == f"host=rebind.test:{http_server.port}"
    assert lookups == ["rebind.test"]


def test_the_body_is_cut_at_max_bytes(http_server):
    client = local_client(http_server)
    cut = client.get(http_server.url("/big?n=100000", host="public.test"), max_bytes=1000)
    assert (len(cut.content), cut.truncated) == (1000, True)
    whole = client.get(http_server.url("/big?n=1000", host="public.test"), max_bytes=1000)
    assert (len(whole.content), whole.truncated) == (1000, False)


def test_max_bytes_defaults_to_the_setting(http_server, settings):
    settings.HTTP_TOOL_MAX_BYTES = 500
    response = local_client(http_server).get(http_server.url("/big?n=5000", host="public.test"))
    assert (len(response.content), response.truncated) == (500, True)


def test_a_server_that_does_not_answer_times_out(http_server):
    with pytest.raises(ToolError, match="timed out"):
        local_client(http_server, timeout=0.5).get(http_server.url("/slow?seconds=5", host="public.test"))


def test_the_time_limit_is_for_the_whole_call_not_each_read(http_server):
    """The server sends a byte every 50 ms for 10 s: no read waits long, the call still ends."""
    with pytest.raises(ToolError, match="timed out"):
        local_client(http_server, timeout=0.5).get(http_server.url("/drip", host="public.test"))


def test_the_time_limit_defaults_to_the_setting(http_server, settings):
    settings.HTTP_TOOL_TIMEOUT_SECONDS = 0.5
    with pytest.raises(ToolError, match=r"timed out \(limit 0.5 s"):
        local_client(http_server).get(http_server.url("/slow?seconds=5", host="public.test"))


def test_compressed_bodies_are_refused_rather_than_inflated(http_server):
    with pytest.raises(ToolError, match="gzip"):
        local_client(http_server).get(http_server.url("/gzip", host="public.test"))


# --- TLS -----------------------------------------------------------------------------------------


def test_tls_uses_the_host_name_for_sni_and_the_certificate(https_server, tls_material):
    ca, _, _ = tls_material
    client = SafeHttpClient(
        resolver=FakeDNS({"safe.test": ["127.0.0.1"]}), allow_loopback=True, ssl_context=ca.client_context()
    )
    response = client.get(https_server.url("/echo", host="safe.test"))
    assert response.status == 200
    assert response.text == f"host=safe.test:{https_server.port}"
    assert https_server.sni_names[-1] == "safe.test"


def test_a_certificate_for_another_name_is_rejected(https_server, tls_material):
    """Connecting by address must not weaken verification: the certificate is for safe.test."""
    ca, _, _ = tls_material
    client = SafeHttpClient(
        resolver=FakeDNS({"other.test": ["127.0.0.1"]}), allow_loopback=True, ssl_context=ca.client_context()
    )
    with pytest.raises(ToolError, match=re.escape("certificate is not valid for 'other.test'")):
        client.get(https_server.url("/echo", host="other.test"))


def test_an_untrusted_certificate_is_rejected(https_server):
    client = SafeHttpClient(resolver=FakeDNS({"safe.test": ["127.0.0.1"]}), allow_loopback=True)
    with pytest.raises(ToolError, match=r"(?i)certificate verify failed"):
        client.get(https_server.url("/echo", host="safe.test"))


# --- the http_get tool ---------------------------------------------------------------------------


def run_http_get(tool, **arguments):
    return execute_tool(tool=tool, arguments=arguments, context=ToolContext(tenant=None))


def test_http_get_returns_the_decoded_text(http_server):
    tool = build_http_get_tool(lambda: local_client(http_server))
    outcome = run_http_get(tool, url=http_server.url("/latin1", host="public.test"))
    assert outcome.ok, outcome.error
    assert outcome.data == {
        "url": http_server.url("/latin1", host="public.test"),
        "status": 200,
        "content_type": "text/plain; charset=iso-8859-1",
        "text": "café",
        "truncated": False,
    }


def test_http_get_caps_max_bytes_at_the_setting(http_server, settings):
    settings.HTTP_TOOL_MAX_BYTES = 100
    tool = build_http_get_tool(lambda: local_client(http_server))
    outcome = run_http_get(tool, url=http_server.url("/big?n=5000", host="public.test"), max_bytes=10_000)
    assert (len(outcome.data["text"]), outcome.data["truncated"]) == (100, True)


def test_http_get_shortens_the_text_to_keep_its_output_valid_json(http_server, settings):
    settings.TOOL_OUTPUT_MAX_CHARS = 300
    tool = build_http_get_tool(lambda: local_client(http_server))
    outcome = run_http_get(tool, url=http_server.url("/big?n=5000", host="public.test"))
    assert (outcome.ok, outcome.truncated) == (True, False)
    assert len(outcome.output) <= 300
    data = json.loads(outcome.output)
    assert data["truncated"] is True
    assert data["text"] == "a" * len(data["text"])


def test_http_get_describes_binary_bodies(http_server):
    tool = build_http_get_tool(lambda: local_client(http_server))
    outcome = run_http_get(tool, url=http_server.url("/image", host="public.test"))
    assert outcome.data["text"] == "[108 bytes of image/png not shown]"


def test_the_registered_http_get_refuses_loopback(http_server):
    outcome = run_http_get(http_get_tool, url=http_server.url("/echo"))
    assert not outcome.ok
    assert outcome.error.startswith("Blocked:")
    assert "loopback" in outcome.error
