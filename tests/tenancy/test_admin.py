from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from apps.tenancy.models import ApiKey, AuditLog, Tenant
from tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", ["tenant", "membership", "apikey", "auditlog", "invitation"])
def test_changelists_render(operator, model):
    from apps.tenancy.invitations import invitation_create
    from apps.tenancy.principal import Actor

    invitation_create(tenant=TenantFactory(), actor=Actor.system("test"), actor_role="owner", email="a@example.com")
    assert operator.get(f"/admin/tenancy/{model}/").status_code == 200


def test_adding_a_key_shows_it_once(operator, tenant):
    response = operator.post(
        "/admin/tenancy/apikey/add/",
        {"tenant": tenant.pk, "name": "from-admin", "scopes": ["read", "write"], "role": "admin"},
        follow=True,
    )
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    key = ApiKey.objects.get(name="from-admin")
    assert any(key.prefix in message and "shown only now" in message for message in shown)
    assert AuditLog.objects.filter(action="api_key.created", target_id=str(key.pk)).exists()


def test_suspend_and_reactivate_actions(operator, tenant):
    # The action goes through conversations.tenant_suspend_and_stop (turns and sockets: test_suspension.py).
    operator.post("/admin/tenancy/tenant/", {"action": "suspend", "_selected_action": [tenant.pk]})
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.SUSPENDED
    operator.post("/admin/tenancy/tenant/", {"action": "reactivate", "_selected_action": [tenant.pk]})
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.ACTIVE
    assert AuditLog.objects.filter(tenant=tenant, action="tenant.suspended").exists()


def test_revoke_action(operator, tenant):
    from tests.conftest import create_key

    api_key, _ = create_key(tenant)
    operator.post("/admin/tenancy/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    assert api_key.revoked
    assert api_key.revoked_at


def test_revoking_an_invitation_in_the_admin_ends_it(operator, tenant):
    from apps.tenancy.invitations import invitation_create
    from apps.tenancy.models import Invitation
    from apps.tenancy.principal import Actor

    invitation, _ = invitation_create(tenant=tenant, actor=Actor.system("t"), actor_role="owner", email="a@example.com")
    operator.post("/admin/tenancy/invitation/", {"action": "revoke", "_selected_action": [invitation.pk]})
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None
    assert AuditLog.objects.filter(tenant=tenant, action="invitation.revoked").exists()
