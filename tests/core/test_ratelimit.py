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
