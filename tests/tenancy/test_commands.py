from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from apps.tenancy.models import ApiKey, Membership, Tenant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_tenant_with_owner():
    user = UserFactory(username="olga")
    _run("create_tenant", "acme", "--name", "Acme Inc", "--owner", "olga")
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Inc"
    assert Membership.objects.get(tenant=tenant).user == user


def test_create_tenant_twice_is_a_clear_error():
    _run("create_tenant", "acme")
    with pytest.raises(CommandError, match="already exists"):
        _run("create_tenant", "acme")


def test_create_api_key_prints_a_working_key_once():
    _run("create_tenant", "acme")
    key = _run("create_api_key", "--tenant", "acme", "--name", "ci", "--scopes", "read", "--quiet").strip()
    assert ApiKey.objects.get(name="ci").scopes == ["read"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/tenants/current").json()["slug"] == "acme"


def test_create_api_key_for_unknown_tenant_says_how_to_make_it():
    with pytest.raises(CommandError, match="create_tenant nope"):
        _run("create_api_key", "--tenant", "nope", "--name", "x")


def test_seed_demo_creates_once_and_prints_the_secrets_once():
    first = _run("seed_demo")
    assert "API key:   ap_" in first
    assert "Dashboard: http://127.0.0.1:8000/   user: demo   password: " in first
    assert "user: admin   password: " in first
    second = _run("seed_demo")
    assert "ap_" not in second.split("New API key")[0]
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert ApiKey.objects.filter(tenant__slug="demo").count() == 1
    key = first.split("API key:   ")[1].split()[0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/tenants/current").json()["role"] == "owner"


def test_the_lost_key_command_seed_demo_prints_makes_a_key_like_the_demo_key():
    first = _run("seed_demo")
    hint = _run("seed_demo").split("New API key: python manage.py ")[1].split()
    key = _run(*hint, "--quiet").strip()
    demo, new = ApiKey.objects.get(name="demo"), ApiKey.objects.get(name="mykey")
    assert (new.role, sorted(new.scopes), new.created_by) == (demo.role, sorted(demo.scopes), demo.created_by)
    for plaintext in (first.split("API key:   ")[1].split()[0], key):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        assert client.get("/api/tenants/current").json()["role"] == "owner"


def test_a_key_cannot_act_for_a_member_above_their_role():
    user = UserFactory(username="mia")
    _run("create_tenant", "acme")
    with pytest.raises(CommandError, match="not a member"):
        _run("create_api_key", "--tenant", "acme", "--name", "x", "--user", "mia")
    Membership.objects.create(tenant=Tenant.objects.get(slug="acme"), user=user, role="member")
    with pytest.raises(CommandError, match="at most that"):
        _run("create_api_key", "--tenant", "acme", "--name", "x", "--user", "mia", "--role", "owner")
    _run("create_api_key", "--tenant", "acme", "--name", "x", "--user", "mia", "--role", "member", "--quiet")
    assert ApiKey.objects.get(name="x").created_by == user


def test_seed_demo_gives_an_older_demo_tenant_its_dashboard_user(django_user_model):
    _run("seed_demo")
    django_user_model.objects.filter(username="demo").delete()
    again = _run("seed_demo")
    assert "Created the dashboard's demo user: demo   password: " in again
    demo = django_user_model.objects.get(username="demo")
    assert demo.memberships.get().role == "owner"
    assert demo.memberships.get().tenant.slug == "demo"
