"""Invitations: an admin invites an address, the person signed in with it accepts; nothing an
inviter sees depends on whether that address has an account anywhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.tenancy.models import AuditLog, Invitation, Membership, Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _invite(client, email: str, role: str = "member"):
    return client.post("/api/invitations", {"email": email, "role": role}, format="json")


def _signed_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _accept(user, token: str):
    return _signed_in(user).post("/api/invitations/accept", {"token": token}, format="json")


def _comparable(body: dict) -> dict:
    return {
        k: v for k, v in body.items() if k not in {"id", "email", "token", "accept_url", "created_at", "expires_at"}
    }


def test_an_invitation_looks_the_same_for_known_and_unknown_addresses(tenant, other_tenant, owner_client):
    known = UserFactory(email="known@example.com")
    MembershipFactory(tenant=other_tenant, user=known)
    for_known = _invite(owner_client, "known@example.com")
    for_unknown = _invite(owner_client, "nobody-has-this@example.com")
    assert for_known.status_code == for_unknown.status_code == 201
    assert set(for_known.json()) == set(for_unknown.json())
    assert _comparable(for_known.json()) == _comparable(for_unknown.json())
    # No account was made for the unknown address, and the known one learnt nothing of this tenant.
    assert not type(known).objects.filter(email="nobody-has-this@example.com").exists()
    assert not Membership.objects.filter(tenant=tenant, user=known).exists()


def test_only_a_hash_of_the_token_is_stored_and_the_list_never_shows_it(owner_client):
    body = _invite(owner_client, "ana@example.com").json()
    assert body["token"].startswith("inv_")
    assert body["status"] == "pending"
    # The link is the dashboard's accept page for this token, on the address the request came to.
    assert body["accept_url"] == f"http://testserver/invite/{body['token']}/"
    stored = Invitation.objects.get(pk=body["id"])
    assert body["token"] not in stored.token_hash
    listed = owner_client.get("/api/invitations").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]
    assert all("token" not in row for row in listed)


def test_the_invitee_accepts_once_and_becomes_a_member_with_the_role(tenant, owner_client):
    token = _invite(owner_client, "Ana@Example.com", role="admin").json()["token"]
    ana = UserFactory(email="ana@example.com")
    accepted = _accept(ana, token)
    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["tenant_slug"] == tenant.slug
    assert accepted.json()["role"] == "admin"
    assert Membership.objects.get(tenant=tenant, user=ana).role == Role.ADMIN
    again = _accept(ana, token)
    assert again.status_code == 404
    assert owner_client.get("/api/invitations").json()["results"] == []
    accepted_rows = owner_client.get("/api/invitations", {"status": "accepted"}).json()["results"]
    assert [row["status"] for row in accepted_rows] == ["accepted"]
    actions = set(AuditLog.objects.filter(tenant=tenant).values_list("action", flat=True))
    assert {"invitation.created", "invitation.accepted", "member.added"} <= actions


def test_a_forwarded_token_does_not_work_for_another_account(tenant, owner_client):
    token = _invite(owner_client, "ana@example.com").json()["token"]
    mallory = UserFactory(email="mallory@example.com")
    stolen = _accept(mallory, token)
    unknown = _accept(mallory, "inv_" + "x" * 43)
    assert stolen.status_code == unknown.status_code == 404
    assert stolen.json() == unknown.json()  # nobody learns whose token it was
    assert not Membership.objects.filter(tenant=tenant, user=mallory).exists()
    assert _accept(UserFactory(email="ana@example.com"), token).status_code == 200


def test_accepting_needs_a_signed_in_person_not_an_api_key(owner_client):
    token = _invite(owner_client, "ana@example.com").json()["token"]
    anonymous = APIClient().post("/api/invitations/accept", {"token": token}, format="json")
    assert anonymous.status_code == 401
    by_key = owner_client.post("/api/invitations/accept", {"token": token}, format="json")
    assert by_key.status_code == 401


def test_an_expired_invitation_is_refused_and_audited(tenant, owner_client, settings):
    body = _invite(owner_client, "ana@example.com").json()
    Invitation.objects.filter(pk=body["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = _accept(UserFactory(email="ana@example.com"), body["token"])
    assert response.status_code == 409
    assert "expired" in response.json()["message"]
    assert AuditLog.objects.filter(tenant=tenant, action="invitation.expired", target_id=body["id"]).exists()
    assert owner_client.get("/api/invitations", {"status": "expired"}).json()["count"] == 1


def test_invitations_expire_after_the_configured_hours(owner_client, settings):
    settings.INVITATION_TTL_HOURS = 2
    body = _invite(owner_client, "ana@example.com").json()
    lifetime = Invitation.objects.get(pk=body["id"]).expires_at - timezone.now()
    assert timedelta(hours=1, minutes=59) < lifetime <= timedelta(hours=2)


def test_a_revoked_invitation_cannot_be_accepted(tenant, owner_client):
    body = _invite(owner_client, "ana@example.com").json()
    assert owner_client.delete(f"/api/invitations/{body['id']}").status_code == 204
    assert _accept(UserFactory(email="ana@example.com"), body["token"]).status_code == 404
    assert AuditLog.objects.filter(tenant=tenant, action="invitation.revoked", target_id=body["id"]).exists()


def test_a_newer_invitation_replaces_the_pending_one(tenant, owner_client):
    first = _invite(owner_client, "ana@example.com").json()
    second = _invite(owner_client, "ana@example.com", role="viewer").json()
    ana = UserFactory(email="ana@example.com")
    assert _accept(ana, first["token"]).status_code == 404
    assert _accept(ana, second["token"]).status_code == 200
    assert Membership.objects.get(tenant=tenant, user=ana).role == Role.VIEWER


def test_inviting_a_current_member_is_a_conflict(tenant, owner_client):
    MembershipFactory(tenant=tenant, user=UserFactory(email="ana@example.com"))
    response = _invite(owner_client, "ana@example.com")
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"


def test_nobody_invites_above_their_own_role(tenant, make_client):
    admin = make_client(tenant, role=Role.ADMIN)
    assert _invite(admin, "a@example.com", role="owner").status_code == 403
    assert _invite(admin, "a@example.com", role="admin").status_code == 201
    member = make_client(tenant, role=Role.MEMBER)
    assert _invite(member, "b@example.com", role="viewer").status_code == 403  # inviting is for admins
    owner_invite = _invite(make_client(tenant, role=Role.OWNER), "c@example.com", role="owner").json()
    assert admin.delete(f"/api/invitations/{owner_invite['id']}").status_code == 403


def test_a_suspended_tenants_invitation_waits(tenant, owner_client):
    from apps.tenancy.principal import Actor
    from apps.tenancy.services import tenant_suspend

    token = _invite(owner_client, "ana@example.com").json()["token"]
    tenant_suspend(tenant=tenant, actor=Actor.system("test"), reason="test")
    response = _accept(UserFactory(email="ana@example.com"), token)
    assert response.status_code == 409
    assert "suspended" in response.json()["message"]


def test_bad_input_gets_clear_errors(owner_client):
    bad = owner_client.post("/api/invitations", {"email": "not-an-address", "role": "emperor"}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"email", "role"}
    assert owner_client.get("/api/invitations", {"status": "weird"}).status_code == 400
    user = UserFactory()
    assert _signed_in(user).post("/api/invitations/accept", {}, format="json").status_code == 400


def test_the_operator_command_prints_a_token_the_invitee_can_accept(tenant, capsys):
    call_command("create_invitation", tenant.slug, "ana@example.com", "--role", "admin")
    printed = capsys.readouterr().out.strip().splitlines()
    token = printed[-1]
    assert token.startswith("inv_")
    assert printed[-2] == f"Link: /invite/{token}/"  # a path: no PUBLIC_BASE_URL and no request
    ana = UserFactory(email="ana@example.com")
    assert _accept(ana, token).status_code == 200
    assert Membership.objects.get(tenant=tenant, user=ana).role == Role.ADMIN


def test_the_invitation_link_uses_public_base_url_when_it_is_set(owner_client, settings):
    settings.PUBLIC_BASE_URL = "https://agents.example.com"
    body = _invite(owner_client, "ana@example.com").json()
    assert body["accept_url"] == f"https://agents.example.com/invite/{body['token']}/"
