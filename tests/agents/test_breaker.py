"""The per-provider circuit breaker, its state in Redis, and its API."""

from __future__ import annotations

import time

import pytest

from apps.agents import services
from apps.agents.breaker import BreakerOpen, breaker_status, guarded_chat, provider_breaker_status
from apps.agents.models import ProviderKind
from apps.agents.providers.base import ChatMessage, ProviderRequestError, ProviderUnavailable
from apps.tenancy.models import Role
from apps.tenancy.principal import Actor
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_providers")]


@pytest.fixture(autouse=True)
def small_breaker(settings):
    settings.BREAKER_FAILURE_THRESHOLD = 2
    settings.BREAKER_RESET_SECONDS = 60  # long enough that a slow machine never sees it half-open


@pytest.fixture
def quick_reset(settings):
    """For the tests that watch the breaker half-open: a one-second cool-down."""
    settings.BREAKER_RESET_SECONDS = 1


def call(provider, on_text=None):
    return guarded_chat(
        provider,
        model="stub-small",
        messages=[ChatMessage(role="user", content="hi")],
        tools=[],
        temperature=None,
        max_output_tokens=None,
        on_text=on_text or (lambda _: None),
    )


def wait_for_state(provider, state: str, timeout: float = 3.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = provider_breaker_status(provider)
        if status["state"] == state or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def trip(provider, model_server):
    model_server.script([Reply(status=500), Reply(status=500)])
    for _ in range(2):
        with pytest.raises(ProviderUnavailable) as raised:
            call(provider)
        assert not isinstance(raised.value, BreakerOpen)  # the tripping call shows the real cause


def test_opens_after_the_threshold_and_refuses_without_calling(tenant, make_provider, model_server):
    provider = make_provider(tenant)
    trip(provider, model_server)
    with pytest.raises(BreakerOpen) as raised:
        call(provider)
    assert isinstance(raised.value, ProviderUnavailable)  # the engine falls back on it like any outage
    assert len(model_server.requests) == 2
    status = provider_breaker_status(provider)
    assert status["state"] == "open"
    assert status["failure_count"] == 2
    assert status["opened_at"]
    assert 0 < status["retry_after_seconds"] <= 60


@pytest.mark.usefixtures("quick_reset")
def test_half_opens_after_the_reset_time_and_a_success_closes_it(tenant, make_provider, model_server):
    provider = make_provider(tenant)
    trip(provider, model_server)
    assert wait_for_state(provider, "half-open")["state"] == "half-open"
    model_server.script([Reply(text="back")])
    assert call(provider).text == "back"
    status = provider_breaker_status(provider)
    assert (status["state"], status["failure_count"]) == ("closed", 0)


@pytest.mark.usefixtures("quick_reset")
def test_a_failed_trial_call_opens_it_again(tenant, make_provider, model_server):
    provider = make_provider(tenant)
    trip(provider, model_server)
    wait_for_state(provider, "half-open")
    model_server.script([Reply(status=503)])
    with pytest.raises(ProviderUnavailable):
        call(provider)
    assert provider_breaker_status(provider)["state"] == "open"
    with pytest.raises(BreakerOpen):
        call(provider)


def test_refused_requests_do_not_count(tenant, make_provider, model_server):
    provider = make_provider(tenant)
    model_server.script([Reply(status=400)] * 4)
    for _ in range(4):
        with pytest.raises(ProviderRequestError):
            call(provider)
    status = provider_breaker_status(provider)
    assert (status["state"], status["failure_count"]) == ("closed", 0)


def test_a_cancelled_stream_does_not_count(tenant, make_provider, model_server):
    class CancelledError(Exception):
        pass

    def cancel(_delta):
        raise CancelledError

    provider = make_provider(tenant)
    model_server.script([Reply(text="a b c")] * 3)
    for _ in range(3):
        with pytest.raises(CancelledError):
            call(provider, on_text=cancel)
    assert provider_breaker_status(provider)["state"] == "closed"


def test_a_success_resets_the_failure_count(tenant, make_provider, model_server):
    provider = make_provider(tenant)
    model_server.script([Reply(status=500), Reply(text="ok"), Reply(status=500)])
    with pytest.raises(ProviderUnavailable):
        call(provider)
    call(provider)
    with pytest.raises(ProviderUnavailable):
        call(provider)
    status = provider_breaker_status(provider)
    assert (status["state"], status["failure_count"]) == ("closed", 1)


def test_the_state_is_shared_through_redis(tenant, make_provider, model_server):
    """Another process (here: another thread, with its own breaker object) sees the open state."""
    import threading

    provider = make_provider(tenant)
    trip(provider, model_server)
    seen: list[BaseException] = []

    def other_worker():
        try:
            call(provider)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            seen.append(exc)

    thread = threading.Thread(target=other_worker)
    thread.start()
    thread.join()
    assert isinstance(seen[0], BreakerOpen)


def test_offline_provider_is_never_broken(tenant, settings):
    settings.BREAKER_FAILURE_THRESHOLD = 1
    services.tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    offline = next(p for p in tenant_providers(tenant) if p.kind == ProviderKind.OFFLINE)
    for _ in range(3):
        assert call(offline).offline is True
    assert provider_breaker_status(offline)["guarded"] is False


def tenant_providers(tenant):
    from apps.agents.selectors import provider_list

    return list(provider_list(tenant=tenant))


def test_status_lists_the_tenants_providers(tenant, make_provider, model_server, other_tenant):
    make_provider(tenant, name="mine")
    make_provider(other_tenant, name="theirs")
    assert [s["provider"] for s in breaker_status(tenant=tenant)] == ["mine"]


def test_status_and_reset_api(tenant, make_provider, model_server, owner_client, make_client):
    provider = make_provider(tenant, name="flaky")
    trip(provider, model_server)

    body = make_client(tenant, role=Role.VIEWER).get("/api/breaker/status").json()
    [flaky] = body["breakers"]
    assert (flaky["provider"], flaky["state"], flaky["failure_count"]) == ("flaky", "open", 2)

    member = make_client(tenant, role=Role.MEMBER)
    assert member.post("/api/breaker/reset/flaky").status_code == 403

    reset = owner_client.post("/api/breaker/reset/flaky")
    assert reset.status_code == 200
    assert (reset.json()["state"], reset.json()["failure_count"]) == ("closed", 0)
    model_server.script([Reply(text="through")])
    assert call(provider).text == "through"
    assert owner_client.post("/api/breaker/reset/nope").status_code == 404


def test_another_tenants_provider_cannot_be_reset(tenant, other_tenant, make_provider, owner_client):
    make_provider(other_tenant, name="theirs")
    assert owner_client.post("/api/breaker/reset/theirs").status_code == 404
