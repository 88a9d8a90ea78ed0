"""The Build pages (agents, providers, skills & plugins, policy, workspace) through Django's test
client, where a browser adds nothing: what each role is shown, what the server refuses, and the
services' refusals (outbound policy, path confinement) shown inline."""

from __future__ import annotations

import pytest

from apps.agents.models import Agent, Provider
from apps.policy.models import ToolRule
from apps.tenancy.models import Role
from apps.tools import workspace
from apps.tools.models import AiRule
from tests.factories import MembershipFactory, TenantFactory, populate_tenant

pytestmark = pytest.mark.django_db

PAGES = ["/agents/", "/agents/new/", "/providers/", "/skills/", "/skills/?tab=catalog", "/skills/?tab=plugins"]
PAGES += ["/policy/", "/workspace/"]


def _signed_in(client, role: str, tenant=None):
    tenant = tenant or TenantFactory()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    return tenant


def test_every_build_page_renders_for_an_admin_with_the_tenants_rows(client):
    tenant = _signed_in(client, Role.ADMIN)
    populate_tenant(tenant)
    agent = Agent.objects.filter(tenant=tenant).first()
    provider = Provider.objects.filter(tenant=tenant, platform__isnull=True).first()
    workspace.file_write(tenant=tenant, path="notes/plan.md", content="# Plan")
    pages = [*PAGES, f"/agents/{agent.pk}/", f"/providers/{provider.pk}/", f"/plugins/mcp-{tenant.slug}/"]
    pages += ["/workspace/?path=notes", "/workspace/file/?path=notes/plan.md"]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
    assert agent.name in client.get("/agents/").content.decode()
    detail = client.get(f"/providers/{provider.pk}/").content.decode()
    assert provider.api_key_hint in detail
    assert f"sk-{tenant.slug}-populate-key" not in detail
    mcp = client.get(f"/plugins/mcp-{tenant.slug}/").content.decode()
    assert "Authorization" in mcp
    assert f"{tenant.slug}-secret" not in mcp


def test_a_viewer_reads_the_build_pages_without_any_edit_control(client):
    tenant = _signed_in(client, Role.VIEWER)
    populate_tenant(tenant)
    agent = Agent.objects.filter(tenant=tenant).first()
    for url in ["/agents/", f"/agents/{agent.pk}/", "/providers/", "/skills/", "/policy/", "/workspace/"]:
        html = client.get(url).content.decode()
        assert 'type="submit"' not in html.split('id="main"')[1].replace("Sign out", ""), url
    assert client.get("/agents/new/").status_code == 403


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/agents/new/", {"name": "sneaky"}),
        ("/providers/", {"kind": "offline", "name": "sneaky"}),
        ("/policy/rules/", {"tool": "calculator", "action": "deny"}),
        ("/policy/ai-rules/", {"text": "Say yes to everything."}),
        ("/policy/safe-mode/", {"enter": "on", "reason": "x"}),
        ("/workspace/file/", {"path": "sneaky.md", "content": "x", "sha256": ""}),
        ("/plugins/mcp/new/", {"name": "sneaky", "url": "https://mcp.example.com/mcp"}),
    ],
)
def test_a_member_cannot_write_what_only_admins_may(client, url, body):
    tenant = _signed_in(client, Role.MEMBER)
    response = client.post(url, body)
    assert response.status_code == 403
    assert not Agent.objects.filter(tenant=tenant).exists()
    assert not Provider.objects.filter(tenant=tenant).exists()
    assert not ToolRule.objects.filter(tenant=tenant).exists()
    assert not AiRule.objects.filter(tenant=tenant).exists()
    with pytest.raises(workspace.WorkspaceNotFound):
        workspace.file_read(tenant=tenant, path="sneaky.md")


def test_a_member_may_simulate_a_tool_as_the_api_allows(client):
    _signed_in(client, Role.MEMBER)
    response = client.post("/policy/simulate/", {"tool": "calculator", "args": '{"expression": "1+1"}'})
    assert response.status_code == 200
    assert "no rule for this tool" in response.content.decode()


def test_a_provider_url_the_outbound_policy_refuses_is_an_inline_error(client, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    tenant = _signed_in(client, Role.ADMIN)
    response = client.post(
        "/providers/",
        {"kind": "openai_compatible", "name": "local", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-x"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="p-base_url-error"' in html
    assert "sk-x" not in html
    assert not Provider.objects.filter(tenant=tenant).exists()


def test_an_mcp_server_on_a_refused_address_is_an_inline_error(client, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    _signed_in(client, Role.ADMIN)
    response = client.post(
        "/plugins/mcp/new/", {"name": "local", "url": "http://127.0.0.1:9/mcp", "headers": "X-Token: s3cr3t-value"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="m-url-error"' in html
    assert "s3cr3t-value" not in html


def test_a_workspace_path_out_of_the_workspace_is_refused(client):
    _signed_in(client, Role.ADMIN)
    assert client.get("/workspace/file/?path=../../etc/passwd").status_code == 400
    response = client.post("/workspace/file/", {"path": "/etc/passwd", "content": "x", "sha256": ""})
    assert response.status_code == 400


def test_a_save_over_a_change_made_meanwhile_is_refused_and_keeps_the_text(client):
    tenant = _signed_in(client, Role.ADMIN)
    first = workspace.file_write(tenant=tenant, path="a.md", content="one")
    workspace.file_write(tenant=tenant, path="a.md", content="two (someone else)")
    response = client.post("/workspace/file/", {"path": "a.md", "content": "mine", "sha256": first["sha256"]})
    assert response.status_code == 409
    assert "changed since it was read" in response.content.decode()
    assert workspace.file_read(tenant=tenant, path="a.md")["content"] == "two (someone else)"
