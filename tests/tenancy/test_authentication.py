from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.constants import UNAUTHORIZED_MESSAGE
from apps.tenancy import services
from apps.tenancy.models import ApiKey, AuditLog, Role, Scope
from apps.tenancy.principal import Actor
from tests.conftest import create_key

pytestmark = pytest.mark.django_db

UNAUTHORIZED = {"error": "Unauthorized", "message": UNAUTHORIZED_MESSAGE}


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_valid_key_resolves_its_tenant(tenant):
    _, key = create_key(tenant)
    response = _client(key).get("/api/tenants/current")
    assert response.status_code == 200
    assert response.json()["slug"] == tenant.slug
    assert response.json()["role"] == Role.OWNER


def test_missing_header_is_401_with_the_documented_body(anon_client):
    response = anon_client.get("/api/tenants/current")
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer ", "Bearer nonsense", "Bearer ap_unknown.secret", "Token abc", "Basic dXNlcjpwYXNz"],
)
def test_malformed_or_unknown_credentials_are_401(header, tenant):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/tenants/current")
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_wrong_secret_for_a_real_prefix_is_401_and_audited_once_a_minute(tenant):
    api_key, key = create_key(tenant)
    forged = key.split(".")[0] + ".wrongsecretwrongsecretwrongsecretwrongs"
    for _ in range(3):
        assert _client(forged).get("/api/tenants/current").status_code == 401
    failures = AuditLog.objects.filter(tenant=tenant, action=AuditLog.Action.LOGIN_FAILED)
    assert failures.count() == 1
    assert failures.get().data == {"username": api_key.prefix, "channel": "api_key"}


def test_revoked_key_is_401(tenant):
    api_key, key = create_key(tenant)
    services.api_key_revoke(tenant=tenant, actor=Actor.system(), api_key=api_key)
    assert _client(key).get("/api/tenants/current").json() == UNAUTHORIZED


def test_expired_key_is_401(tenant):
    api_key, key = create_key(tenant)
    ApiKey.objects.filter(pk=api_key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    assert _client(key).get("/api/tenants/current").status_code == 401


def test_suspended_tenant_key_is_401_until_reactivated(tenant):
    _, key = create_key(tenant)
    services.tenant_suspend(tenant=tenant, actor=Actor.system(), reason="unpaid")
    assert _client(key).get("/api/tenants/current").json() == UNAUTHORIZED
    services.tenant_reactivate(tenant=tenant, actor=Actor.system())
    assert _client(key).get("/api/tenants/current").status_code == 200


def test_key_is_stored_only_as_a_hash_and_looks_like_ours(tenant):
    api_key, key = create_key(tenant)
    assert key.startswith("ap_")
    prefix, _, secret = key.partition(".")
    assert prefix == api_key.prefix
    assert len(secret) == 40
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert all(secret not in str(value) for value in stored.values())
    assert stored["hashed_key"].startswith("sha512$$")


def test_last_used_is_written_at_most_once_a_minute(tenant, django_assert_max_num_queries):
    api_key, key = create_key(tenant)
    client = _client(key)
    client.get("/api/tenants/current")
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first is not None
    client.get("/api/tenants/current")
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first - timedelta(seconds=61))
    client.get("/api/tenants/current")
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at > first


def test_session_login_authenticates_the_api_for_the_users_tenant(tenant):
    from tests.factories import MembershipFactory, UserFactory

    user = UserFactory()
    MembershipFactory(tenant=tenant, user=user, role=Role.MEMBER)
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/tenants/current")
    assert response.status_code == 200
    assert response.json()["slug"] == tenant.slug
    assert response.json()["role"] == Role.MEMBER


def test_session_user_without_membership_is_401():
    from tests.factories import UserFactory

    client = APIClient()
    client.force_login(UserFactory())
    assert client.get("/api/tenants/current").status_code == 401


def test_failed_admin_login_is_audited(client, tenant):
    from tests.factories import MembershipFactory, UserFactory

    user = UserFactory(username="mallory-target")
    MembershipFactory(tenant=tenant, user=user)
    client.post("/admin/login/", {"username": "mallory-target", "password": "wrong"})
    entry = AuditLog.objects.get(action=AuditLog.Action.LOGIN_FAILED)
    assert entry.tenant == tenant
    assert entry.data["channel"] == "password"


def test_scopes_narrow_a_key_below_its_role(tenant):
    _, key = create_key(tenant, role=Role.OWNER, scopes=[Scope.READ])
    response = _client(key).get("/api/tenants/current")
    assert response.json()["role"] == Role.VIEWER
    assert _client(key).post("/api/keys", {"name": "x"}, format="json").status_code == 403
