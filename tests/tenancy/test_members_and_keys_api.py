from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.tenancy.models import ApiKey, AuditLog, Membership, Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_change_a_members_role_then_remove_them(tenant, owner_client):
    user = UserFactory(email="ana@example.com")
    member_id = str(MembershipFactory(tenant=tenant, user=user, role=Role.VIEWER).pk)
    listed = owner_client.get("/api/members").json()["results"]
    assert {"ana@example.com", owner_client.user.email} == {row["email"] for row in listed}

    changed = owner_client.patch(f"/api/members/{member_id}", {"role": "admin"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["role"] == "admin"

    assert owner_client.delete(f"/api/members/{member_id}").status_code == 204
    assert not Membership.objects.filter(pk=member_id).exists()
    actions = list(AuditLog.objects.filter(tenant=tenant, target_id=str(user.pk)).values_list("action", flat=True))
    assert set(actions) == {"member.role_changed", "member.removed"}


def test_members_cannot_be_added_by_username_any_more(tenant, owner_client):
    user = UserFactory()
    response = owner_client.post("/api/members", {"username": user.username, "role": "member"}, format="json")
    assert response.status_code == 405
    assert not Membership.objects.filter(tenant=tenant, user=user).exists()


def test_the_member_list_shows_only_this_tenants_members(tenant, other_tenant, owner_client):
    stranger = MembershipFactory(tenant=other_tenant, user=UserFactory(email="stranger@example.com"))
    emails = {row["email"] for row in owner_client.get("/api/members").json()["results"]}
    assert stranger.user.email not in emails


def test_admin_cannot_invite_or_demote_owners(tenant, make_client):
    admin = make_client(tenant, role=Role.ADMIN)
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER)
    assert admin.post("/api/invitations", {"email": "x@example.com", "role": "owner"}, format="json").status_code == 403
    assert admin.patch(f"/api/members/{owner.pk}", {"role": "member"}, format="json").status_code == 403
    assert admin.delete(f"/api/members/{owner.pk}").status_code == 403


def test_last_owner_cannot_leave(tenant, owner_client):
    only_owner = Membership.objects.get(tenant=tenant, user=owner_client.user)
    response = owner_client.patch(f"/api/members/{only_owner.pk}", {"role": "admin"}, format="json")
    assert response.status_code == 409
    assert "owner" in response.json()["message"]


def test_removing_a_member_revokes_the_keys_they_made(tenant, owner_client, make_client):
    admin = make_client(tenant, role=Role.ADMIN)
    membership = Membership.objects.get(tenant=tenant, user=admin.user)
    assert owner_client.delete(f"/api/members/{membership.pk}").status_code == 204
    assert admin.get("/api/tenants/current").status_code == 401


def test_demoting_a_member_caps_their_keys(tenant, owner_client, make_client):
    admin = make_client(tenant, role=Role.ADMIN)
    membership = Membership.objects.get(tenant=tenant, user=admin.user)
    owner_client.patch(f"/api/members/{membership.pk}", {"role": "viewer"}, format="json")
    assert admin.get("/api/tenants/current").json()["role"] == Role.VIEWER


def test_create_list_and_revoke_a_key(tenant, owner_client):
    created = owner_client.post("/api/keys", {"name": "ci", "scopes": ["read"], "expires_in_days": 30}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("ap_")
    assert body["status"] == "active"
    assert body["expires_at"]

    listed = owner_client.get("/api/keys").json()
    assert {"count", "results"} <= set(listed)
    assert all("key" not in row for row in listed["results"])
    assert body["id"] in {row["id"] for row in listed["results"]}

    assert _bearer(body["key"]).get("/api/tenants/current").status_code == 200
    revoked = owner_client.post(f"/api/keys/{body['id']}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert _bearer(body["key"]).get("/api/tenants/current").status_code == 401
    assert AuditLog.objects.filter(tenant=tenant, action="api_key.revoked", target_id=body["id"]).exists()


def test_delete_revokes_and_keeps_the_row(owner_client):
    body = owner_client.post("/api/keys", {"name": "tmp"}, format="json").json()
    assert owner_client.delete(f"/api/keys/{body['id']}").status_code == 204
    assert ApiKey.objects.get(pk=body["id"]).revoked is True


def test_key_validation_errors_name_the_fields(owner_client):
    response = owner_client.post("/api/keys", {"scopes": ["root"]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Validation failed"
    assert set(body["fields"]) == {"name", "scopes"}


def test_owner_updates_settings_and_unknown_settings_are_refused(tenant, owner_client):
    ok = owner_client.patch(
        "/api/tenants/current", {"name": "Acme", "settings": {"monthly_budget_usd": "50.00"}}, format="json"
    )
    assert ok.status_code == 200
    assert ok.json()["name"] == "Acme"
    assert ok.json()["settings"] == {"monthly_budget_usd": "50.00"}
    bad = owner_client.patch("/api/tenants/current", {"settings": {"colour": "red"}}, format="json")
    assert bad.status_code == 400
    assert "colour" in bad.json()["fields"]["settings"]


def test_audit_log_lists_newest_first_and_filters(tenant, owner_client):
    owner_client.post("/api/keys", {"name": "a"}, format="json")
    owner_client.post("/api/invitations", {"email": "z@example.com"}, format="json")
    everything = owner_client.get("/api/audit/log").json()["results"]
    assert everything[0]["action"] == "invitation.created"
    keys_only = owner_client.get("/api/audit/log", {"action": "api_key.created"}).json()["results"]
    assert keys_only
    assert all(row["action"] == "api_key.created" for row in keys_only)
    assert owner_client.get("/api/audit/log", {"since": "yesterday"}).status_code == 400


def test_audit_log_filters_by_actor_and_a_date_range(tenant, owner_client):
    from datetime import timedelta

    from django.utils import timezone

    from apps.tenancy.principal import Actor
    from apps.tenancy.services import audit_record

    audit_record(tenant=tenant, actor=Actor(label="user:ana"), action="tenant.updated")
    audit_record(tenant=tenant, actor=Actor(label="user:bob"), action="tenant.updated")
    by_ana = owner_client.get("/api/audit/log", {"actor": "ANA"}).json()["results"]
    assert [row["actor"] for row in by_ana] == ["user:ana"]

    now = timezone.now()
    window = {"since": (now - timedelta(minutes=5)).isoformat(), "until": (now + timedelta(minutes=5)).isoformat()}
    assert len(owner_client.get("/api/audit/log", window).json()["results"]) >= 2
    before = {"until": (now - timedelta(minutes=5)).isoformat()}
    assert owner_client.get("/api/audit/log", before).json()["results"] == []
    assert owner_client.get("/api/audit/log", {"until": "soon"}).status_code == 400


def test_audit_entries_cannot_be_rewritten(tenant):
    from django.db import DatabaseError, transaction

    entry = AuditLog.objects.create(tenant=tenant, action="api_key.created", actor_label="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditLog.objects.filter(pk=entry.pk).update(actor_label="someone else")
