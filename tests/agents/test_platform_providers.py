"""Platform providers: the operator's key never reaches a tenant's server, response, event or error.

The exploit this closes: a tenant admin PATCHed the base_url of the provider that held a copy of
the platform key to their own host and called /test; their server received the key. Here the
operator's endpoint is the `model_server` stub and the tenant's host is a second stub server (a
real loopback listener that speaks the protocols and records every request's headers). The
platform keys are distinct canaries, and every path (update, create, test, live model list, a
chat turn) is checked against the listener's log.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from apps.agents import selectors, services
from apps.agents.models import PlatformProvider, Provider, ProviderKind
from apps.events.models import Event
from apps.tenancy.principal import Actor
from tests.stubs.model_server import Reply, start_stub_server

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_providers")]

ACTOR = Actor.system("test")
CANARY = {
    ProviderKind.OPENAI: "sk-platform-openai-CANARY-0001aaaa",
    ProviderKind.ANTHROPIC: "sk-ant-platform-CANARY-0002bbbb",
    ProviderKind.OPENAI_COMPATIBLE: "vllm-platform-CANARY-0003cccc",
}
HEADER_CANARY = "gateway-header-CANARY-0004dddd"
KINDS = list(CANARY)


@pytest.fixture
def listener():
    """The tenant admin's own server."""
    with start_stub_server() as server:
        yield server


@pytest.fixture(autouse=True)
def platform_env(settings, model_server):
    """The operator's platform providers, all on the model_server stub, each with its canary."""
    settings.OPENAI_API_KEY = CANARY[ProviderKind.OPENAI]
    settings.OPENAI_BASE_URL = model_server.openai_base_url
    settings.ANTHROPIC_API_KEY = CANARY[ProviderKind.ANTHROPIC]
    settings.ANTHROPIC_BASE_URL = model_server.anthropic_base_url
    settings.OLLAMA_HOST = ""
    services.platform_providers_sync_from_env()
    services.platform_provider_save(
        actor=ACTOR,
        platform_provider=None,
        name="vllm",
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=model_server.openai_base_url,
        options={"headers": {"X-Gateway-Token": HEADER_CANARY}},
        api_key=CANARY[ProviderKind.OPENAI_COMPATIBLE],
    )


def platform_named(kind: str) -> PlatformProvider:
    return PlatformProvider.objects.get(kind=kind)


@pytest.fixture
def linked(tenant):
    """The tenant bootstrapped: linked to the three platform providers."""
    services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    return {p.kind: p for p in Provider.objects.filter(tenant=tenant, platform__isnull=False)}


def secrets_seen(server) -> list[str]:
    """Every canary that appears anywhere in the requests a server received."""
    dumped = json.dumps([{"headers": r.headers, "path": r.path, "body": r.body} for r in server.log])
    return [secret for secret in [*CANARY.values(), HEADER_CANARY] if secret in dumped]


def assert_no_secret(text: str) -> None:
    for secret in [*CANARY.values(), HEADER_CANARY]:
        assert secret not in text


# --- the exploit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_redirecting_a_platform_provider_is_refused_and_the_listener_never_sees_the_key(
    kind, linked, owner_client, listener, model_server
):
    provider = linked[kind]
    url = f"/api/providers/{provider.pk}"
    for body in (
        {"base_url": listener.openai_base_url},
        {"options": {"headers": {"X-Forward-To": listener.url}}},
        {"api_key": "sk-tenant-wants-to-swap"},
        {"base_url": listener.openai_base_url, "api_key": "sk-tenant-wants-to-swap"},
    ):
        response = owner_client.patch(url, body, format="json")
        assert response.status_code == 400, response.json()
        assert "platform provider" in response.json()["message"] + json.dumps(response.json().get("fields"))
    assert (
        owner_client.put(f"/api/providers/{provider.name}/key", {"api_key": "x" * 20}, format="json").status_code == 400
    )
    assert owner_client.delete(f"/api/providers/{provider.name}/key").status_code == 400

    probe = owner_client.post(f"{url}/test")
    listing = owner_client.get(f"{url}/models")
    assert probe.status_code == 200
    assert probe.json()["reachable"] is True, probe.json()
    assert listing.status_code == 200
    assert listener.log == []
    # The positive control: the operator's endpoint got the operator's key, as it should.
    assert CANARY[kind] in secrets_seen(model_server)
    for text in (
        probe.content,
        listing.content,
        owner_client.get(url).content,
        owner_client.get("/api/providers").content,
    ):
        assert_no_secret(text.decode())


@pytest.mark.parametrize("kind", KINDS)
def test_creating_a_provider_at_the_listener_sends_no_platform_key(kind, linked, owner_client, listener):
    base_url = listener.anthropic_base_url if kind == ProviderKind.ANTHROPIC else listener.openai_base_url
    created = owner_client.post(
        "/api/providers", {"name": "mine", "kind": kind, "base_url": base_url}, format="json"
    ).json()
    assert created["platform"] is False
    assert created["has_api_key"] is False
    assert owner_client.post(f"/api/providers/{created['id']}/test").json()["reachable"] is True
    assert owner_client.get(f"/api/providers/{created['id']}/models").status_code == 200
    assert len(listener.log) >= 2  # it was called, without anything of the operator's
    assert secrets_seen(listener) == []
    # A link cannot be made to point anywhere either.
    refused = owner_client.post(
        "/api/providers", {"platform": platform_named(kind).name, "name": "x", "base_url": base_url}, format="json"
    )
    assert refused.status_code == 400
    assert "base_url" in refused.json()["fields"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_chat_turn_on_a_platform_model_uses_the_platform_endpoint_only(
    kind, linked, tenant, owner_client, listener, model_server, django_capture_on_commit_callbacks, caplog
):
    caplog.set_level(logging.DEBUG)  # the SDKs' and httpx's debug logs included
    provider = linked[kind]
    if not provider.models.filter(model_id="stub-small").exists():  # vllm's were listed live at bootstrap
        services.catalog_model_create(tenant=tenant, provider=provider, model_id="stub-small")
    owner_client.put(
        "/api/roster/assistant/model", {"role": "guide", "model": f"{provider.name}/stub-small"}, format="json"
    )
    # Even a tenant that tried the redirect first only ever reaches the operator's endpoint.
    owner_client.patch(f"/api/providers/{provider.pk}", {"base_url": listener.openai_base_url}, format="json")
    model_server.script([Reply(text="Answered on the platform.")])

    turn = run_turn(owner_client, django_capture_on_commit_callbacks, "hello")
    assert turn.status == "completed", turn.error
    assert turn.model == f"{provider.name}/stub-small"
    assert listener.log == []
    assert CANARY[kind] in secrets_seen(model_server)
    events = json.dumps(list(Event.objects.filter(tenant_id=tenant.pk).values_list("data", flat=True)), default=str)
    assert_no_secret(events)
    assert "HTTP Request" in caplog.text  # the SDK's own request logs were captured
    assert_no_secret(caplog.text)


def run_turn(client, capture, text: str):
    from apps.conversations.models import Turn

    session = client.post("/api/sessions", {"agent": "assistant"}, format="json").json()["id"]
    with capture(execute=True):
        response = client.post(f"/api/sessions/{session}/messages", {"text": text}, format="json")
    assert response.status_code == 202, response.json()
    return Turn.objects.get(pk=response.json()["turn_id"])


def test_errors_from_a_platform_provider_do_not_quote_its_key_or_endpoint(linked, owner_client, model_server):
    provider = linked[ProviderKind.OPENAI_COMPATIBLE]
    # An upstream that echoes what it was sent (a misconfigured gateway does exactly this).
    host = model_server.url.removeprefix("http://")
    echo = f"bad token {HEADER_CANARY} for {model_server.openai_base_url} ({host}) with {CANARY[provider.kind]}"
    model_server.script([Reply(status=400, error=echo)])
    body = owner_client.post(f"/api/providers/{provider.pk}/test").json()
    assert body["reachable"] is False
    assert "[platform]" in body["error"]
    assert_no_secret(body["error"])
    assert model_server.openai_base_url not in body["error"]
    assert host not in body["error"]


def test_the_tenant_sees_platform_providers_without_endpoint_headers_or_key(linked, owner_client):
    listed = {p["name"]: p for p in owner_client.get("/api/providers").json()["results"]}
    vllm = listed["vllm"]
    assert vllm["platform"] is True
    assert (vllm["base_url"], vllm["options"], vllm["has_api_key"], vllm["api_key_hint"]) == ("", {}, False, "")
    assert listed["offline"]["platform"] is False
    platform = owner_client.get("/api/providers/platform").json()
    assert {p["name"] for p in platform} == {"openai", "anthropic", "vllm"}
    assert all(p["linked"] for p in platform)
    assert_no_secret(json.dumps(platform))


def test_a_tenant_may_disable_rename_and_unlink_a_platform_provider_for_itself_only(
    linked, tenant, other_tenant, owner_client
):
    services.tenant_bootstrap_agents(tenant=other_tenant, actor=ACTOR)
    provider = linked[ProviderKind.OPENAI]
    response = owner_client.patch(f"/api/providers/{provider.pk}", {"enabled": False, "name": "gpt"}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["enabled"], response.json()["name"]) == (False, "gpt")
    assert owner_client.delete(f"/api/providers/{provider.pk}").status_code == 204
    assert PlatformProvider.objects.filter(name="openai").exists()
    assert Provider.objects.filter(tenant=other_tenant, platform__name="openai", enabled=True).exists()
    relinked = owner_client.post("/api/providers", {"platform": "openai"}, format="json")
    assert relinked.status_code == 201, relinked.json()
    assert relinked.json()["name"] == "openai"
    assert relinked.json()["platform"] is True
    assert (
        owner_client.post("/api/providers", {"platform": "openai", "name": "again"}, format="json").status_code == 409
    )


# --- tenant-owned providers ----------------------------------------------------------------------


def test_a_new_base_url_clears_the_key_and_headers_unless_given_again(owner_client, listener, model_server):
    created = owner_client.post(
        "/api/providers",
        {
            "name": "mine",
            "kind": "openai",
            "base_url": model_server.openai_base_url,
            "api_key": "sk-tenant-own-key-0000abcd",
            "options": {"headers": {"X-Team": "team-secret-value-9xYz"}},
        },
        format="json",
    ).json()
    assert created["options"]["headers"] == {"X-Team": "team-…9xYz"}  # the hint, never the value
    url = f"/api/providers/{created['id']}"
    # Sending back what was read keeps the stored header value.
    kept = owner_client.patch(url, {"options": created["options"]}, format="json").json()
    assert Provider.objects.get(pk=created["id"]).options["headers"]["X-Team"] == "team-secret-value-9xYz"
    assert kept["has_api_key"] is True

    moved = owner_client.patch(url, {"base_url": listener.openai_base_url}, format="json").json()
    assert moved["has_api_key"] is False
    assert "headers" not in moved["options"]
    owner_client.post(f"{url}/test")
    assert "sk-tenant-own-key-0000abcd" not in json.dumps([r.headers for r in listener.log])
    assert "team-secret-value-9xYz" not in json.dumps([r.headers for r in listener.log])

    with_key = owner_client.patch(
        url, {"base_url": model_server.openai_base_url, "api_key": "sk-tenant-second-key-1111"}, format="json"
    ).json()
    assert with_key["has_api_key"] is True
    assert with_key["api_key_hint"] == "sk-…1111"


def test_a_tenant_ollama_must_give_its_own_url(owner_client, settings):
    settings.OLLAMA_HOST = "http://operator-ollama:11434"
    response = owner_client.post("/api/providers", {"name": "local", "kind": "ollama"}, format="json")
    assert response.status_code == 400
    assert "base_url" in response.json()["fields"]


# --- access control and caps ---------------------------------------------------------------------


def test_a_tenant_not_granted_a_platform_provider_cannot_see_link_or_use_it(
    linked, tenant, owner_client, model_server, django_capture_on_commit_callbacks
):
    provider = linked[ProviderKind.OPENAI]
    services.catalog_model_create(tenant=tenant, provider=provider, model_id="stub-small")
    owner_client.put("/api/roster/assistant/model", {"role": "guide", "model": "openai/stub-small"}, format="json")
    platform = platform_named(ProviderKind.OPENAI)
    services.platform_access_set(tenant=tenant, platform_provider=platform, allowed=False)

    names = {p["name"] for p in owner_client.get("/api/providers").json()["results"]}
    assert "openai" not in names
    assert "openai" not in {p["name"] for p in owner_client.get("/api/providers/platform").json()}
    refs = {m["ref"] for m in owner_client.get("/api/models/available?page_size=200").json()["results"]}
    assert not any(ref.startswith("openai/") for ref in refs)
    assigned = owner_client.put(
        "/api/roster/assistant/model", {"role": "specialist", "model": "openai/stub-small"}, format="json"
    )
    assert assigned.status_code == 400
    assert owner_client.post("/api/providers", {"platform": "openai", "name": "o2"}, format="json").status_code == 400
    assert owner_client.post(f"/api/providers/{provider.pk}/test").status_code == 404

    model_server.log.clear()
    turn = run_turn(owner_client, django_capture_on_commit_callbacks, "hello")
    # The guide's model is out of reach and the agent has no other: the turn fails and says why.
    assert turn.status == "failed"
    assert "No model is available for agent 'assistant'" in turn.error
    assert turn.model != "openai/stub-small"
    assert not [r for r in model_server.log if CANARY[ProviderKind.OPENAI] in json.dumps(r.headers)]


def test_a_revoked_link_refuses_at_client_build_time_with_a_clear_error(linked, tenant):
    from apps.agents.providers.base import ProviderRequestError
    from apps.agents.providers.registry import client_for

    provider = linked[ProviderKind.ANTHROPIC]
    platform = platform_named(ProviderKind.ANTHROPIC)
    platform.enabled = False
    platform.save()
    with pytest.raises(ProviderRequestError, match="not available to your organization"):
        client_for(provider)


def test_platform_only_to_granted_tenants(tenant, other_tenant):
    platform = platform_named(ProviderKind.OPENAI_COMPATIBLE)
    platform.available_to_all_tenants = False
    platform.save()
    services.platform_access_set(tenant=tenant, platform_provider=platform, allowed=True)
    services.tenant_bootstrap_agents(tenant=tenant, actor=ACTOR)
    services.tenant_bootstrap_agents(tenant=other_tenant, actor=ACTOR)
    assert Provider.objects.filter(tenant=tenant, platform=platform).exists()
    assert not Provider.objects.filter(tenant=other_tenant, platform=platform).exists()


def test_spend_and_cap_selectors_count_this_tenants_platform_turns(
    linked, tenant, owner_client, model_server, django_capture_on_commit_callbacks
):
    platform = platform_named(ProviderKind.OPENAI)
    assert selectors.platform_cap_for(tenant, platform) is None
    services.platform_access_set(tenant=tenant, platform_provider=platform, allowed=True, monthly_cap_usd=5)
    assert selectors.platform_cap_for(tenant, platform) == 5
    owner_client.put("/api/roster/assistant/model", {"role": "guide", "model": "openai/gpt-4o-mini"}, format="json")
    model_server.script([Reply(text="Paid answer.", usage=(1_000_000, 1_000_000))])
    turn = run_turn(owner_client, django_capture_on_commit_callbacks, "hello")
    assert turn.status == "completed", turn.error
    # gpt-4o-mini: $0.15 in + $0.60 out per million tokens.
    assert turn.cost_usd == Decimal("0.75")
    assert selectors.platform_spend_this_month(tenant, platform) == Decimal("0.75")
    assert selectors.platform_spend_this_month(tenant, platform_named(ProviderKind.ANTHROPIC)) == 0
    # Renaming or unlinking and re-linking does not reset what the cap is checked against.
    link = linked[ProviderKind.OPENAI]
    owner_client.patch(f"/api/providers/{link.pk}", {"name": "renamed"}, format="json")
    owner_client.delete(f"/api/providers/{link.pk}")
    owner_client.post("/api/providers", {"platform": "openai", "name": "fresh"}, format="json")
    assert selectors.platform_spend_this_month(tenant, platform) == Decimal("0.75")
    listed = {p["name"]: p for p in owner_client.get("/api/providers/platform").json()}
    assert listed["openai"]["spent_this_month_usd"] == "0.750000"
    assert listed["openai"]["monthly_cap_usd"] == "5.0000"


def test_a_failed_turn_on_a_platform_model_records_no_platform_secret(
    linked, tenant, owner_client, model_server, django_capture_on_commit_callbacks
):
    provider = linked[ProviderKind.OPENAI_COMPATIBLE]
    owner_client.put("/api/roster/assistant/model", {"role": "guide", "model": "vllm/stub-small"}, format="json")
    echo = f"rejected {CANARY[provider.kind]} / {HEADER_CANARY} at {model_server.openai_base_url}"
    model_server.default_reply = Reply(status=400, error=echo)
    turn = run_turn(owner_client, django_capture_on_commit_callbacks, "hello")
    assert turn.status == "failed"
    assert "[platform]" in turn.error
    assert_no_secret(turn.error)
    events = json.dumps(list(Event.objects.filter(tenant_id=tenant.pk).values_list("data", flat=True)), default=str)
    assert_no_secret(events)
