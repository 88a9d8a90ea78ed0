"""The Tenant pages (keys, members, invitations, audit, usage) through Django's test client:
the role refusals, the one-time secrets, the invitation page's single 404, and the usage sums.
What a browser adds (copy buttons, htmx swaps, the chart) is in test_tenantpages.py."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from apps.conversations.selectors import usage_by_day_and_agent
from apps.dashboard.access import SESSION_TENANT_KEY
from apps.tenancy import invitations
from apps.tenancy.models import ApiKey, AuditLog, Invitation, Membership, Role
from apps.tenancy.principal import Actor
from apps.tenancy.services import audit_record
from tests.dashboard.tenantpages_data import agent_named, spent_turn
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def _signed_in(role: str, tenant=None, **user_fields):
    tenant = tenant or TenantFactory()
    user = UserFactory(**user_fields)
    membership = MembershipFactory(tenant=tenant, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client, membership


def test_a_member_gets_no_admin_page_and_every_admin_post_is_refused():
    client, membership = _signed_in(Role.MEMBER)
    tenant = membership.tenant
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER)
    for path in ("/keys/", "/members/", "/audit/"):
        assert client.get(path).status_code == 403, path
    assert client.post("/keys/", {"name": "sneaky", "scopes": ["read"]}).status_code == 403
    assert client.post("/members/invitations/", {"email": "x@example.com", "role": "admin"}).status_code == 403
    assert client.post(f"/members/{owner.pk}/role/", {"role": "viewer"}).status_code == 403
    assert client.post(f"/members/{owner.pk}/remove/").status_code == 403
    assert not ApiKey.objects.filter(tenant=tenant).exists()
    assert not Invitation.objects.filter(tenant=tenant).exists()
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    # What a member may read: usage, with no Tenant admin entries in the sidebar.
    page = client.get("/usage/").content.decode()
    assert 'href="/usage/"' in page
    assert 'href="/keys/"' not in page
    assert 'href="/members/"' not in page
    assert 'href="/audit/"' not in page


def test_an_admin_has_no_controls_for_an_owner_and_the_server_refuses_them_too():
    client, admin = _signed_in(Role.ADMIN)
    owner = MembershipFactory(tenant=admin.tenant, role=Role.OWNER)
    page = client.get("/members/").content.decode()
    assert f"/members/{owner.pk}/role/" not in page
    assert f"/members/{owner.pk}/remove/" not in page
    assert f"/members/{admin.pk}/role/" in page
    assert '<option value="owner"' not in page  # an admin cannot grant owner

    refused = client.post(f"/members/{owner.pk}/role/", {"role": "viewer"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 403
    assert refused.json()["message"] == "Only an owner can grant or remove the owner role."
    plain = client.post(f"/members/{owner.pk}/remove/", follow=True)
    assert "Only an owner can grant or remove the owner role." in plain.content.decode()
    assert Membership.objects.filter(pk=owner.pk, role=Role.OWNER).exists()


def test_a_new_key_is_in_the_create_answer_only():
    client, admin = _signed_in(Role.ADMIN)
    created = client.post("/keys/", {"name": "ci", "scopes": ["read", "write"], "monthly_budget_usd": "5"})
    assert created.status_code == 200
    key = ApiKey.objects.get(tenant=admin.tenant, name="ci")
    body = created.content.decode()
    plaintext = body.split('id="new-key-value">')[1].split("<")[0]
    assert plaintext.startswith(key.prefix + ".")
    assert ApiKey.objects.get_from_key(plaintext) == key
    assert created["Cache-Control"] == "no-store"
    assert key.role == Role.ADMIN
    assert key.scopes == ["read", "write"]
    assert key.monthly_budget_usd == Decimal("5")
    assert plaintext not in client.get("/keys/").content.decode()
    assert AuditLog.objects.filter(tenant=admin.tenant, action="api_key.created", actor_user=admin.user).exists()


def test_bad_key_input_is_shown_next_to_the_field():
    client, admin = _signed_in(Role.ADMIN)
    answer = client.post("/keys/", {"name": "", "expires_in_days": "0"}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200  # htmx swaps the form back in, errors included
    body = answer.content.decode()
    assert 'id="key-name-error"' in body
    assert 'id="key-expires-error"' in body
    assert 'id="key-scopes-error"' in body
    assert not ApiKey.objects.filter(tenant=admin.tenant).exists()


def test_revoking_a_key_is_tenant_scoped_and_recorded():
    client, admin = _signed_in(Role.ADMIN)
    mine = ApiKey.objects.create_key(tenant=admin.tenant, name="mine", scopes=["read"])[0]
    theirs = ApiKey.objects.create_key(tenant=TenantFactory(), name="theirs", scopes=["read"])[0]
    assert client.post(f"/keys/{theirs.pk}/revoke/").status_code == 404
    answer = client.post(f"/keys/{mine.pk}/revoke/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    assert "revoked" in answer.content.decode()
    assert "toast" in answer["HX-Trigger"]
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked
    assert not theirs.revoked


def test_an_invitation_answers_the_same_for_known_and_unknown_addresses():
    client, admin = _signed_in(Role.ADMIN)
    UserFactory(email="known@example.com")

    def invite(email: str) -> str:
        answer = client.post("/members/invitations/", {"email": email, "role": "member"}, HTTP_HX_REQUEST="true")
        assert answer.status_code == 200
        body = answer.content.decode()
        link = body.split('id="invite-link">')[1].split("<")[0]
        assert link.startswith("http://testserver/invite/inv_")
        # The answer to the inviter, before the refreshed list of pending invitations; what may
        # differ is the address, the link, the expiry time and the CSRF token.
        answer_part = body.split('<div id="pending"')[0].replace(email, "EMAIL").replace(link, "LINK")
        answer_part = re.sub(r"<time [^>]*>[^<]*</time>", "TIME", answer_part)
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", answer_part)

    assert invite("known@example.com") == invite("nobody@example.com")
    assert Invitation.objects.filter(tenant=admin.tenant).count() == 2


def test_the_invite_page_is_one_404_for_every_token_this_account_cannot_use():
    tenant = TenantFactory(name="Acme")
    ana = UserFactory(email="ana@example.com")
    other = UserFactory(email="other@example.com")

    def token_for(email):
        return invitations.invitation_create(
            tenant=tenant, actor=Actor.system("t"), actor_role=Role.OWNER, email=email
        )[1]

    someone_elses = token_for("other@example.com")
    revoked = token_for("ana@example.com")
    first = Invitation.objects.get(email="ana@example.com")
    invitations.invitation_revoke(tenant=tenant, actor=Actor.system("t"), actor_role=Role.OWNER, invitation=first)
    pending = token_for("ana@example.com")
    client = Client()
    client.force_login(ana)
    answers = [client.get(f"/invite/{token}/") for token in ("inv_nope", someone_elses, revoked)]
    answers.append(client.post(f"/invite/{someone_elses}/"))
    assert {a.status_code for a in answers} == {404}
    assert len({a.content for a in answers}) == 1
    assert not Membership.objects.filter(tenant=tenant, user__in=[ana, other]).exists()

    shown = client.get(f"/invite/{pending}/")
    assert shown.status_code == 200
    assert "Join Acme" in shown.content.decode()
    accepted = client.post(f"/invite/{pending}/")
    assert accepted.status_code == 302
    assert accepted["Location"] == "/"
    assert client.session[SESSION_TENANT_KEY] == str(tenant.pk)  # the session is now in that tenant
    assert Membership.objects.get(tenant=tenant, user=ana).role == Role.MEMBER
    assert client.get(f"/invite/{pending}/").status_code == 404  # used once


def test_the_invite_page_sends_a_visitor_to_sign_in_and_says_which_account():
    token = invitations.invitation_create(
        tenant=TenantFactory(), actor=Actor.system("t"), actor_role=Role.OWNER, email="ana@example.com"
    )[1]
    answer = Client().get(f"/invite/{token}/", follow=True)
    assert answer.redirect_chain[-1][0] == f"/login/?next=/invite/{token}/"
    assert "sign in with the account whose email address the invitation was sent to" in answer.content.decode()


def test_an_expired_invitation_says_so_to_its_invitee():
    tenant = TenantFactory()
    ana = UserFactory(email="ana@example.com")
    system = Actor.system("t")
    token = invitations.invitation_create(tenant=tenant, actor=system, actor_role=Role.OWNER, email=ana.email)[1]
    Invitation.objects.filter(tenant=tenant).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    client = Client()
    client.force_login(ana)
    assert client.get(f"/invite/{token}/").status_code == 409
    refused = client.post(f"/invite/{token}/")
    assert refused.status_code == 409
    assert "expired" in refused.content.decode()
    assert AuditLog.objects.filter(tenant=tenant, action="invitation.expired").exists()


def test_the_audit_page_filters_by_action_actor_and_days():
    client, admin = _signed_in(Role.ADMIN)
    tenant = admin.tenant
    audit_record(tenant=tenant, actor=Actor(label="user:ana"), action="tenant.updated")
    audit_record(tenant=tenant, actor=Actor(label="user:bob"), action="api_key.created")
    today = timezone.now().astimezone(dt.UTC).date()

    def rows(**params):
        body = client.get("/audit/", params).content.decode()
        return body.count("<tr>") - 1 if "audit-entries" in body else 0

    assert rows() == 2
    assert rows(action="tenant.updated") == 1
    assert rows(actor="BOB") == 1
    assert rows(**{"from": today.isoformat(), "to": today.isoformat()}) == 2
    assert rows(to=(today - dt.timedelta(days=1)).isoformat()) == 0
    bad = client.get("/audit/", {"from": "31/12/2026"})
    assert bad.status_code == 400
    assert "YYYY-MM-DD" in bad.content.decode()


def test_usage_sums_tokens_and_cost_per_utc_day_and_agent_of_this_tenant_only():
    tenant, stranger = TenantFactory(), TenantFactory()
    writer, coder = agent_named(tenant, "writer"), agent_named(tenant, "coder")
    spent_turn(tenant, writer, days_ago=0, input_tokens=100, output_tokens=20, cost="0.010000")
    spent_turn(tenant, writer, days_ago=0, input_tokens=50, output_tokens=5, cost="0.005000")
    spent_turn(tenant, coder, days_ago=2, input_tokens=7, output_tokens=3, cost="0.001000")
    spent_turn(tenant, coder, days_ago=40, input_tokens=999, output_tokens=999, cost="9")  # outside the window
    spent_turn(stranger, agent_named(stranger, "writer"), input_tokens=5000, cost="5")

    since = timezone.now() - dt.timedelta(days=29)
    rows = usage_by_day_and_agent(tenant=tenant, since=since.replace(hour=0, minute=0, second=0, microsecond=0))
    today = timezone.now().astimezone(dt.UTC).date()
    assert [(r["day"], r["agent"], r["turns"], r["input_tokens"], r["output_tokens"], r["cost_usd"]) for r in rows] == [
        (today - dt.timedelta(days=2), "coder", 1, 7, 3, Decimal("0.001")),
        (today, "writer", 2, 150, 25, Decimal("0.015")),
    ]


def test_the_usage_page_shows_the_sums_to_a_viewer_and_an_empty_state_without_turns():
    client, viewer = _signed_in(Role.VIEWER)
    empty = client.get("/usage/").content.decode()
    assert "No usage in the last 30 days" in empty
    assert "usage-data" not in empty
    spent_turn(viewer.tenant, agent_named(viewer.tenant, "writer"), input_tokens=120, output_tokens=30, cost="0.25")
    page = client.get("/usage/").content.decode()
    assert '<script id="usage-data" type="application/json">' in page
    assert "$0.2500" in page
    assert "writer" in page
