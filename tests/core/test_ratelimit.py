from __future__ import annotations

import concurrent.futures
import re

import httpx
import pytest

from tests.conftest import create_key


@pytest.mark.django_db
def test_every_api_response_carries_rate_limit_headers(owner_client, settings):
    settings.API_RATE_LIMIT = "100/minute"
    response = owner_client.get("/api/tenants/current")
    assert response["X-RateLimit-Remaining"] == "99"
    assert response["X-RateLimit-Limit"] == "100"
    assert response["RateLimit-Policy"] == '"api";q=100;w=60'
    assert re.fullmatch(r'"api";r=99;t=\d+', response["RateLimit"])
    unauthenticated = owner_client.__class__().get("/api/tenants/current")
    assert unauthenticated.status_code == 401
    assert "X-RateLimit-Remaining" in unauthenticated


@pytest.mark.django_db
def test_over_the_limit_is_429_with_retry_after(owner_client, settings):
    settings.API_RATE_LIMIT = "3/minute"
    statuses = [owner_client.get("/api/tenants/current").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = owner_client.get("/api/tenants/current")
    body = response.json()
    assert body["error"] == "Too many requests"
    assert 1 <= body["retryAfter"] <= 60
    assert response["Retry-After"] == str(body["retryAfter"])
    assert response["X-RateLimit-Remaining"] == "0"
    assert response["X-RateLimit-Limit"] == "3"
    assert int(response["X-RateLimit-Reset"]) > 0


@pytest.mark.django_db
def test_keys_have_separate_budgets(tenant, make_client, settings):
    settings.API_RATE_LIMIT = "2/minute"
    first, second = make_client(tenant), make_client(tenant)
    assert [first.get("/api/tenants/current").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/api/tenants/current").status_code == 200


@pytest.mark.django_db
@pytest.mark.urls("tests.core.urls_probe")
def test_chat_routes_have_their_own_tighter_budget(owner_client, settings):
    settings.CHAT_RATE_LIMIT = "2/minute"
    statuses = [owner_client.post("/api/probe/chat", {}, format="json").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert owner_client.post("/api/probe/chat", {}, format="json")["RateLimit-Policy"] == '"chat";q=2;w=60'
    assert owner_client.get("/api/tenants/current").status_code == 200  # the API budget is separate


@pytest.mark.django_db(transaction=True)
def test_200_concurrent_requests_against_a_limit_of_100_let_exactly_100_through(live_server, settings, tenant):
    settings.API_RATE_LIMIT = "100/minute"
    _, key = create_key(tenant)
    url = f"{live_server.url}/api/tenants/current"

    def call(_):
        with httpx.Client(timeout=30) as client:
            return client.get(url, headers={"Authorization": f"Bearer {key}"}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(call, range(200)))
    assert statuses.count(200) == 100
    assert statuses.count(429) == 100


# --- failed authentications, per client address ---------------------------------------------------


@pytest.mark.django_db
def test_random_bearer_tokens_are_limited_per_address_before_any_lookup(
    tenant, settings, anon_client, django_assert_num_queries
):
    settings.AUTH_FAILURE_RATE_LIMIT = "3/minute"
    statuses = [
        anon_client.get("/api/tenants/current", HTTP_AUTHORIZATION=f"Bearer ap_rand{n:04d}.guess").status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 401]
    with django_assert_num_queries(0):  # the fourth guess never reaches the key table
        blocked = anon_client.get("/api/tenants/current", HTTP_AUTHORIZATION="Bearer ap_rand9999.guess")
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "Too many requests"
    assert int(blocked["Retry-After"]) >= 1
    # Even a real key from that address waits out the window: the address is what is limited.
    _, key = create_key(tenant)
    assert anon_client.get("/api/tenants/current", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 429


@pytest.mark.django_db
def test_failed_authentications_from_one_address_do_not_block_another(tenant, settings, anon_client):
    settings.AUTH_FAILURE_RATE_LIMIT = "2/minute"
    for _ in range(3):
        anon_client.get("/api/tenants/current", HTTP_AUTHORIZATION="Bearer ap_nothere.x", REMOTE_ADDR="192.0.2.1")
    _, key = create_key(tenant)
    ok = anon_client.get("/api/tenants/current", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR="192.0.2.2")
    assert ok.status_code == 200


@pytest.mark.django_db
def test_good_keys_do_not_spend_the_failure_budget(tenant, settings, anon_client):
    settings.AUTH_FAILURE_RATE_LIMIT = "2/minute"
    _, key = create_key(tenant)
    statuses = [
        anon_client.get("/api/tenants/current", HTTP_AUTHORIZATION=f"Bearer {key}").status_code for _ in range(5)
    ]
    assert statuses == [200] * 5


# --- the client address ---------------------------------------------------------------------------


def _address(settings, trusted: int, forwarded: str | None, peer: str = "10.0.0.1") -> str:
    from apps.core.ratelimit import client_address_from_meta

    settings.TRUSTED_PROXY_COUNT = trusted
    meta = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address_from_meta(meta)


def test_without_trusted_proxies_x_forwarded_for_is_ignored(settings):
    assert _address(settings, 0, "6.6.6.6") == "10.0.0.1"


def test_a_forged_leftmost_hop_is_not_used_behind_one_proxy(settings):
    # The client sent "X-Forwarded-For: 6.6.6.6"; our proxy appended the address it saw.
    assert _address(settings, 1, "6.6.6.6, 203.0.113.7") == "203.0.113.7"
    assert _address(settings, 1, "203.0.113.7") == "203.0.113.7"


def test_two_proxies_take_the_hop_the_outer_proxy_wrote(settings):
    # client -> CDN (appends the client) -> load balancer (appends the CDN) -> us
    assert _address(settings, 2, "6.6.6.6, 203.0.113.7, 198.51.100.9") == "203.0.113.7"


def test_a_header_shorter_than_the_proxy_chain_falls_back_to_the_peer(settings):
    assert _address(settings, 2, "203.0.113.7") == "10.0.0.1"
    assert _address(settings, 1, "not-an-address") == "10.0.0.1"


@pytest.mark.django_db
def test_audit_and_limits_see_the_proxied_address_not_the_forged_one(tenant, settings, anon_client):
    from apps.tenancy.models import AuditLog

    settings.TRUSTED_PROXY_COUNT = 1
    settings.AUTH_FAILURE_RATE_LIMIT = "1/minute"
    api_key, _ = create_key(tenant)
    forged = {"HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7", "REMOTE_ADDR": "10.0.0.1"}
    anon_client.get("/api/tenants/current", HTTP_AUTHORIZATION=f"Bearer {api_key.prefix}.wrong", **forged)
    entry = AuditLog.objects.get(action=AuditLog.Action.LOGIN_FAILED)
    assert entry.ip == "203.0.113.7"
    # A new forged leftmost hop does not buy a fresh failure window.
    again = {"HTTP_X_FORWARDED_FOR": "7.7.7.7, 203.0.113.7", "REMOTE_ADDR": "10.0.0.1"}
    assert anon_client.get("/api/tenants/current", HTTP_AUTHORIZATION="Bearer ap_x.y", **again).status_code == 429
