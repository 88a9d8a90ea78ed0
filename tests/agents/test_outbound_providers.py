"""Tenant provider URLs go through the outbound policy: refused at create and update (400 that
says why), and at call time (test, live model list, chat), since what a name resolves to may
change after it was saved. A loopback listener proves nothing was connected to. Errors of
tenant-owned endpoints are sanitized: no raw body, no addresses."""

from __future__ import annotations

import json

import pytest

from apps.agents.models import Provider, ProviderKind
from apps.agents.providers.base import ChatMessage, ProviderRequestError
from apps.agents.providers.registry import client_for
from tests.stubs.listener import hostile_urls, http_response
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_providers", "fake_dns")]

KINDS = [ProviderKind.OPENAI, ProviderKind.ANTHROPIC, ProviderKind.OPENAI_COMPATIBLE]


def create(client, **body):
    return client.post("/api/providers", {"name": "mine", "kind": "openai_compatible", **body}, format="json")


def a_saved_provider(owner_client, *, kind: str, base_url: str) -> Provider:
    """A provider whose base_url is hostile now: saved while its name resolved to a public
    address (or before the policy existed), then rebound."""
    response = create(owner_client, kind=kind, name=f"saved-{kind}".replace("_", "-"), base_url="http://rebind.test/v1")
    assert response.status_code == 201, response.json()
    Provider.objects.filter(pk=response.json()["id"]).update(base_url=base_url)
    return Provider.objects.get(pk=response.json()["id"])


def test_create_refuses_hostile_base_urls_and_says_why(owner_client, listener):
    # One test walks the table: a test per URL would spend its time on database setup.
    for url in hostile_urls(listener.port):
        response = create(owner_client, base_url=url)
        assert response.status_code == 400, (url, response.json())
        message = " ".join(response.json()["fields"]["base_url"])
        assert message.startswith("Blocked: "), (url, message)
        assert "OUTBOUND_ALLOW_PRIVATE_CIDRS" in message
    assert not Provider.objects.filter(name="mine").exists()
    assert listener.connections == 0


def test_update_refuses_hostile_base_urls(owner_client, listener):
    provider_id = create(owner_client, base_url="https://models.example.com/v1").json()["id"]
    for url in hostile_urls(listener.port):
        response = owner_client.patch(f"/api/providers/{provider_id}", {"base_url": url}, format="json")
        assert response.status_code == 400, (url, response.json())
        assert "Blocked: " in json.dumps(response.json()["fields"]), url
    assert Provider.objects.get(pk=provider_id).base_url == "https://models.example.com/v1"
    assert listener.connections == 0


@pytest.mark.parametrize("kind", KINDS)
def test_test_and_models_refuse_a_saved_hostile_url_without_connecting(kind, owner_client, listener):
    provider = a_saved_provider(owner_client, kind=kind, base_url="http://rebind.test/v1")
    for url in hostile_urls(listener.port):
        Provider.objects.filter(pk=provider.pk).update(base_url=url)

        probe = owner_client.post(f"/api/providers/{provider.pk}/test")
        assert probe.status_code == 200
        assert probe.json()["reachable"] is False, url
        assert "Blocked: " in probe.json()["error"], (url, probe.json())

        models = owner_client.get(f"/api/providers/{provider.pk}/models")
        assert models.status_code == 502, url
        assert "Blocked: " in models.json()["message"], (url, models.json())
    assert listener.connections == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_chat_call_to_a_rebound_name_is_refused_without_connecting(kind, owner_client, listener, fake_dns):
    provider = a_saved_provider(owner_client, kind=kind, base_url=f"http://rebind.test:{listener.port}/v1")
    fake_dns["rebind.test"] = ["127.0.0.1"]  # DNS changed after the URL was checked
    with pytest.raises(ProviderRequestError, match=r"rebind\.test resolves to 127\.0\.0\.1, which is a loopback"):
        client_for(provider).chat(
            model="m",
            messages=[ChatMessage(role="user", content="hi")],
            tools=[],
            temperature=None,
            max_output_tokens=None,
            on_text=lambda _: None,
        )
    assert listener.connections == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_redirect_to_the_metadata_address_is_refused(kind, owner_client, listener, fake_dns, settings):
    """The provider's host is fine (allowed by name: it plays a public server), its answer is a
    redirect to the metadata service."""
    settings.OUTBOUND_ALLOW_HOSTS = ["redirector.test"]
    fake_dns["redirector.test"] = ["127.0.0.1"]
    listener.response = http_response("307 Temporary Redirect", headers={"Location": "http://169.254.169.254/"})
    provider = a_saved_provider(owner_client, kind=kind, base_url=f"http://redirector.test:{listener.port}/v1")
    probe = owner_client.post(f"/api/providers/{provider.pk}/test").json()
    assert probe["reachable"] is False
    assert "169.254.169.254 is the cloud metadata service" in probe["error"]
    assert listener.connections == 1  # the provider's own hop only


def test_the_cached_client_is_reused_and_still_checks_every_connection(tenant, make_provider, model_server, settings):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI_COMPATIBLE)
    client = client_for(provider)
    assert client_for(provider) is client
    assert len(client.list_models()) == 2
    settings.OUTBOUND_ALLOW_LOOPBACK = False  # the operator withdraws loopback: applies at once
    with pytest.raises(ProviderRequestError, match="loopback"):
        client_for(provider).list_models()


# --- what a tenant sees of upstream failures ----------------------------------------------------------


def test_upstream_error_messages_lose_their_addresses_and_urls(tenant, owner_client, make_provider, model_server):
    provider = make_provider(tenant, kind=ProviderKind.OPENAI_COMPATIBLE)
    model_server.script([Reply(status=400, error="backend 10.0.0.7:8080 said no; see http://internal.corp/x")])
    response = owner_client.get(f"/api/providers/{provider.pk}/models")
    assert response.status_code == 502
    message = response.json()["message"]
    assert "HTTP 400 (invalid_request_error)" in message
    assert "10.0.0.7" not in message
    assert "internal.corp" not in message
    assert "[address]" in message
    assert "[url]" in message


def test_a_non_api_body_is_never_repeated(tenant, owner_client, listener, settings):
    """A provider URL aimed at some other service must not read back its banner or page."""
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    banner = b"<html>Jenkins 2.1 on build-7.internal - admin console</html>"
    listener.response = http_response("500 Internal Server Error", headers={"Content-Type": "text/html"}, body=banner)
    provider_id = create(owner_client, base_url=listener.url("/v1")).json()["id"]
    for kind in KINDS:
        Provider.objects.filter(pk=provider_id).update(kind=kind)
        probe = owner_client.post(f"/api/providers/{provider_id}/test").json()
        assert probe["reachable"] is False
        assert "HTTP 500" in probe["error"]
        assert "Jenkins" not in probe["error"]
        assert "internal" not in probe["error"]


def test_connection_failures_do_not_echo_socket_details(tenant, owner_client, listener, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    provider_id = create(owner_client, base_url=listener.url("/v1")).json()["id"]
    listener.close()  # nothing listens any more: connection refused
    probe = owner_client.post(f"/api/providers/{provider_id}/test").json()
    assert probe["reachable"] is False
    assert probe["error"] == "mine: could not connect to the provider."
