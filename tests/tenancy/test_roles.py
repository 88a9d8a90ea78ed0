"""Who may do what: viewer reads; member chats; admin manages keys and members; owner all."""

from __future__ import annotations

import pytest

from apps.tenancy.models import Role, Scope

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        (Role.VIEWER, "get", "/api/tenants/current", True),
        (Role.VIEWER, "get", "/api/keys", False),
        (Role.MEMBER, "get", "/api/keys", False),
        (Role.ADMIN, "get", "/api/keys", True),
        (Role.ADMIN, "get", "/api/members", True),
        (Role.MEMBER, "get", "/api/members", False),
        (Role.MEMBER, "get", "/api/audit/log", False),
        (Role.ADMIN, "get", "/api/audit/log", True),
        (Role.ADMIN, "patch", "/api/tenants/current", False),
        (Role.OWNER, "patch", "/api/tenants/current", True),
    ],
)
def test_role_matrix(tenant, make_client, role, method, path, allowed):
    client = make_client(tenant, role=role)
    response = getattr(client, method)(path, {}, format="json")
    if allowed:
        assert response.status_code in (200, 201)
    else:
        assert response.status_code == 403
        assert response.json()["error"] == "Forbidden"
        assert role in response.json()["message"]


def test_write_scope_caps_an_owner_key_at_member(tenant, make_client):
    client = make_client(tenant, role=Role.OWNER, scopes=[Scope.READ, Scope.WRITE])
    assert client.get("/api/tenants/current").json()["role"] == Role.MEMBER
    assert client.get("/api/keys").status_code == 403


def test_admin_cannot_mint_a_key_above_their_role(tenant, make_client):
    client = make_client(tenant, role=Role.ADMIN)
    created = client.post("/api/keys", {"name": "ci", "scopes": ["read", "write", "admin"]}, format="json").json()
    assert created["role"] == Role.ADMIN
    from rest_framework.test import APIClient

    new_client = APIClient()
    new_client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['key']}")
    assert new_client.patch("/api/tenants/current", {"name": "x"}, format="json").status_code == 403
