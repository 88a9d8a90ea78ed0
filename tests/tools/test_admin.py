"""The operators' pages for plugins, skills and rules: they render, and no page shows a plugin secret."""

from __future__ import annotations

import json
import sys

import pytest

from apps.tools import services
from apps.tools.models import Plugin
from tests.factories import UserFactory
from tests.tools.populate import populate_tools

pytestmark = pytest.mark.django_db
SECRET = "Bearer admin-entered-secret-WXYZ"


@pytest.fixture
def operator(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("model", ["plugin", "skill", "airule"])
def test_changelists_and_change_pages_render(operator, tenant, model):
    populate_tools(tenant)
    assert operator.get(f"/admin/tools/{model}/").status_code == 200
    from django.apps import apps

    row = apps.get_model("tools", model).objects.filter(tenant=tenant).first()
    assert operator.get(f"/admin/tools/{model}/{row.pk}/change/").status_code == 200


def test_an_operator_adds_an_mcp_server_with_any_command_and_secrets_stay_hidden(operator, tenant, settings):
    settings.MCP_STDIO_ALLOWED_COMMANDS = []  # the API's limit; operators are not bound by it
    response = operator.post(
        "/admin/tools/plugin/add/",
        {
            "tenant": tenant.pk,
            "name": "ops-server",
            "kind": "mcp",
            "description": "",
            "config": json.dumps({"command": sys.executable, "args": ["-m", "some_server"]}),
            "enabled": "on",
            "new_secrets": json.dumps({"headers": {}, "env": {"API_TOKEN": SECRET}}),
        },
    )
    assert response.status_code == 302, response.content[:2000]
    plugin = Plugin.objects.get(name="ops-server")
    assert services.plugin_secrets(plugin) == {"env": {"API_TOKEN": SECRET}}
    page = operator.get(f"/admin/tools/plugin/{plugin.pk}/change/").content.decode()
    assert SECRET not in page
    assert "env.API_TOKEN" in page


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
