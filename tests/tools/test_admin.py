"""The operators' pages for plugins, stdio server definitions, skills and rules: they render, operators
define stdio servers and grant them, and no page shows a plugin secret."""

from __future__ import annotations

import json
import sys

import pytest

from apps.tools import services
from apps.tools.models import Plugin, PluginDefinition
from tests.factories import UserFactory
from tests.tools.populate import populate_tools

pytestmark = pytest.mark.django_db
SECRET = "Bearer admin-entered-secret-WXYZ"


@pytest.fixture
def operator(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("model", ["plugin", "skill", "airule", "plugindefinition"])
def test_changelists_and_change_pages_render(operator, tenant, model):
    populate_tools(tenant)
    assert operator.get(f"/admin/tools/{model}/").status_code == 200
    from django.apps import apps

    rows = apps.get_model("tools", model).objects
    row = rows.first() if model == "plugindefinition" else rows.filter(tenant=tenant).first()
    assert operator.get(f"/admin/tools/{model}/{row.pk}/change/").status_code == 200


def test_an_operator_defines_a_stdio_server_grants_it_and_its_secret_env_stays_hidden(operator, tenant):
    response = operator.post(
        "/admin/tools/plugindefinition/add/",
        {
            "name": "ops-server",
            "description": "",
            "command": sys.executable,
            "args": json.dumps(["-m", "some_server", "--flag"]),
            "env": json.dumps({"MODE": "ops"}),
            "env_passthrough": json.dumps(["SOME_VAR"]),
            "cwd": "",
            "timeout_seconds": "",
            "tool_side_effects": json.dumps({}),
            "granted_tenants": [str(tenant.pk)],
            "new_secret_env": json.dumps({"API_TOKEN": SECRET}),
        },
    )
    assert response.status_code == 302, response.content[:3000]
    definition = PluginDefinition.objects.get(name="ops-server")
    assert definition.args == ["-m", "some_server", "--flag"]
    assert list(definition.granted_tenants.all()) == [tenant]
    assert SECRET not in definition.secrets_encrypted
    page = operator.get(f"/admin/tools/plugindefinition/{definition.pk}/change/").content.decode()
    assert SECRET not in page
    assert "API_TOKEN" in page

    # The operator may also enable it for the tenant (tenants do it with PUT .../toggle).
    enabled = operator.post(
        "/admin/tools/plugin/add/",
        {"tenant": tenant.pk, "name": "ops-server", "kind": "mcp", "definition": definition.pk, "config": "{}"},
    )
    assert enabled.status_code == 302, enabled.content[:3000]
    row = Plugin.objects.get(tenant=tenant, name="ops-server")
    assert row.definition == definition
    assert row.config == {"transport": "stdio"}


@pytest.mark.parametrize("name", ["builtin", "text", "tenants-own"])
def test_a_definition_cannot_take_a_name_in_use(operator, tenant, name):
    Plugin.objects.create(tenant=tenant, name="tenants-own", kind="mcp", config={"transport": "http", "url": "x"})
    response = operator.post(
        "/admin/tools/plugindefinition/add/",
        {
            "name": name,
            "command": "/bin/false",
            "args": "[]",
            "env": "{}",
            "env_passthrough": "[]",
            "tool_side_effects": "{}",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "installed on the platform" in page or "already have their own plugin" in page
    assert not PluginDefinition.objects.exists()


def test_the_plugin_form_refuses_a_stdio_command_and_an_ungranted_definition(operator, tenant, other_tenant):
    refused = operator.post(
        "/admin/tools/plugin/add/",
        {"tenant": tenant.pk, "name": "x", "kind": "mcp", "config": json.dumps({"command": "/bin/sh"})},
    )
    assert refused.status_code == 200
    assert "operator registers it in the admin" in refused.content.decode()
    definition = PluginDefinition.objects.create(name="only-other", command="/bin/false")
    definition.granted_tenants.add(other_tenant)
    ungranted = operator.post(
        "/admin/tools/plugin/add/",
        {"tenant": tenant.pk, "name": "only-other", "kind": "mcp", "definition": definition.pk, "config": "{}"},
    )
    assert ungranted.status_code == 200
    assert "Grant this definition to the tenant first" in ungranted.content.decode()
    assert not Plugin.objects.filter(tenant=tenant).exists()


def test_an_operator_adds_an_http_server_and_its_headers_stay_hidden(operator, tenant):
    response = operator.post(
        "/admin/tools/plugin/add/",
        {
            "tenant": tenant.pk,
            "name": "ops-http",
            "kind": "mcp",
            "config": json.dumps({"url": "https://mcp.example.com/mcp"}),
            "enabled": "on",
            "new_secrets": json.dumps({"headers": {"Authorization": SECRET}}),
        },
    )
    assert response.status_code == 302, response.content[:2000]
    plugin = Plugin.objects.get(name="ops-http")
    assert services.plugin_secrets(plugin) == {"headers": {"Authorization": SECRET}}
    page = operator.get(f"/admin/tools/plugin/{plugin.pk}/change/").content.decode()
    assert SECRET not in page
    assert "Authorization = …WXYZ" in page


def test_the_admin_refuses_a_python_plugin_or_a_bad_config(operator, tenant):
    for kind, config in (("python", {}), ("mcp", {"url": "ftp://x"})):
        response = operator.post(
            "/admin/tools/plugin/add/",
            {"tenant": tenant.pk, "name": "x", "kind": kind, "config": json.dumps(config), "new_secrets": ""},
        )
        assert response.status_code == 200  # the form again, with errors
    assert not Plugin.objects.filter(name="x").exists()


def test_the_discover_action_records_a_failure(operator, tenant):
    plugin = Plugin.objects.create(
        tenant=tenant, name="down", kind=Plugin.Kind.MCP, config={"transport": "http", "url": "http://127.0.0.1:9/mcp"}
    )
    response = operator.post(
        "/admin/tools/plugin/", {"action": "discover", "_selected_action": [str(plugin.pk)]}, follow=True
    )
    assert response.status_code == 200
    plugin.refresh_from_db()
    assert plugin.status == Plugin.Status.ERROR
