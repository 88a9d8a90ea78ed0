"""Tenants cannot run code on the host: stdio MCP servers come only from operators' definitions that
a tenant was granted and enabled, a server's environment is an allow-list, HTTP MCP headers are
write-only, and no tenant input reaches an import."""

from __future__ import annotations

import importlib
import json
import os
import sys

import pytest

from apps.tenancy.models import AuditLog
from apps.tenancy.principal import Actor
from apps.tools import plugins, services
from apps.tools.models import Plugin, PluginDefinition
from apps.tools.plugins import mcp_spec
from apps.tools.registry import ToolContext, execute_tool, tool_for_tenant
from tests.tools.conftest import DEMO_MCP_SERVER

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
PLATFORM_SECRETS = {
    "DJANGO_SECRET_KEY": "canary-django-secret-key-0001",
    "DATABASE_URL": "postgres://canary:canary-db-password-0002@db/app",
    "OPENAI_API_KEY": "sk-canary-openai-key-0003",
    "ANTHROPIC_API_KEY": "sk-ant-canary-key-0004",
    "FIELD_ENCRYPTION_KEY": "canary-field-encryption-key-0005",
}


def create(client, config: dict, name: str = "srv", **extra):
    return client.post("/api/plugins", {"name": name, "config": config, "discover": False, **extra}, format="json")


# --- tenants register HTTP servers only ------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"transport": "stdio", "command": sys.executable, "args": [str(DEMO_MCP_SERVER)]},
        {"command": "/bin/sh", "args": ["-c", "id"]},
        {"url": "https://mcp.example.com/mcp", "command": "/bin/sh"},
        {"transport": "stdio"},
        {"url": "https://mcp.example.com/mcp", "env": {"LD_PRELOAD": "/var/evil.so"}},
    ],
)
def test_a_tenant_cannot_register_a_stdio_server(owner_client, config):
    response = create(owner_client, config)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "Validation failed"
    message = json.dumps(response.json()["fields"])
    assert "HTTP MCP servers only" in message
    assert "operator" in message
    assert not Plugin.objects.exists()


def test_a_tenant_cannot_turn_its_http_server_into_a_stdio_one(tenant, owner_client):
    assert create(owner_client, {"url": "https://mcp.example.com/mcp"}).status_code == 201
    response = owner_client.patch(
        "/api/plugins/srv", {"config": {"command": "/bin/sh", "args": ["-c", "id"]}}, format="json"
    )
    assert response.status_code == 400
    assert "HTTP MCP servers only" in json.dumps(response.json()["fields"])
    assert Plugin.objects.get(name="srv").config == {"transport": "http", "url": "https://mcp.example.com/mcp"}


def test_a_tenant_cannot_change_an_operators_server(tenant, owner_client, demo_definition):
    demo_definition.granted_tenants.add(tenant)
    Plugin.objects.create(
        tenant=tenant, name="demo", kind="mcp", config={"transport": "stdio"}, definition=demo_definition
    )
    response = owner_client.patch("/api/plugins/demo", {"config": {"url": "https://x.example/mcp"}}, format="json")
    assert response.status_code == 409
    assert "enabled or disabled" in response.json()["message"]
    python = owner_client.patch("/api/plugins/text", {"description": "x"}, format="json")
    assert python.status_code == 404  # never enabled: the tenant has no row to change


def test_a_tenant_cannot_take_a_definitions_name(owner_client, demo_definition):
    response = create(owner_client, {"url": "https://mcp.example.com/mcp"}, name="demo")
    assert response.status_code == 409
    assert "defined on the platform" in response.json()["message"]


# --- operators' definitions, enabled per tenant -------------------------------------------------------


def test_only_granted_definitions_are_listed_and_enabled(tenant, other_tenant, owner_client, demo_definition):
    demo_definition.granted_tenants.add(other_tenant)
    names = [entry["name"] for entry in owner_client.get("/api/plugins").json()["results"]]
    assert "demo" not in names
    assert owner_client.get("/api/plugins/demo").status_code == 404
    assert owner_client.put("/api/plugins/demo/toggle", {"enabled": True}, format="json").status_code == 404
    assert owner_client.post("/api/plugins/demo/execute/echo", {}, format="json").status_code == 404
    assert not Plugin.objects.filter(tenant=tenant).exists()

    demo_definition.granted_tenants.add(tenant)
    listed = {entry["name"]: entry for entry in owner_client.get("/api/plugins").json()["results"]}
    assert listed["demo"] == {
        **listed["demo"],
        "id": None,
        "enabled": False,
        "registered_by": "operator",
        "config": {"transport": "stdio"},
    }
    assert sys.executable not in json.dumps(listed["demo"])  # the argv stays the operator's
    not_yet = owner_client.post("/api/plugins/demo/execute/echo", {}, format="json")
    assert not_yet.status_code == 409
    assert "PUT /api/plugins/demo/toggle" in not_yet.json()["message"]


def test_available_to_all_offers_a_definition_to_every_tenant(tenant, other_tenant, make_client, demo_definition):
    demo_definition.available_to_all = True
    demo_definition.save()
    for each in (tenant, other_tenant):
        names = [entry["name"] for entry in make_client(each).get("/api/plugins").json()["results"]]
        assert "demo" in names


@pytest.mark.usefixtures("mcp_settings")
def test_a_withdrawn_grant_takes_the_tools_away(tenant, owner_client, demo_enabled, demo_definition):
    assert demo_enabled.status == Plugin.Status.READY, demo_enabled.status_message
    assert tool_for_tenant(tenant, "demo__echo") is not None
    demo_definition.granted_tenants.remove(tenant)
    assert tool_for_tenant(tenant, "demo__echo") is None
    assert owner_client.post("/api/plugins/demo/execute/echo", {}, format="json").status_code == 409
    owner_client.put("/api/plugins/demo/toggle", {"enabled": False}, format="json")
    again = owner_client.put("/api/plugins/demo/toggle", {"enabled": True}, format="json")
    assert again.status_code == 409
    assert "no longer grants" in again.json()["message"]


# --- the child's environment ------------------------------------------------------------------------


@pytest.mark.usefixtures("mcp_settings")
def test_a_stdio_server_never_sees_the_platforms_environment(tenant, demo_definition, monkeypatch):
    for name, value in PLATFORM_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("DEMO_PASSED_THROUGH", "yes")
    monkeypatch.setenv("DEMO_NOT_NAMED", "no")
    demo_definition.env = {"DEMO_FIXED": "fixed"}
    demo_definition.env_passthrough = ["DEMO_PASSED_THROUGH"]
    demo_definition.save()
    demo_definition.granted_tenants.add(tenant)
    services.plugin_toggle(tenant=tenant, actor=ACTOR, name="demo", enabled=True)

    outcome = execute_tool(
        tool=tool_for_tenant(tenant, "demo__environment"), arguments={}, context=ToolContext(tenant=tenant)
    )
    assert outcome.ok, outcome.error
    environment = json.loads(outcome.output)
    for name, value in PLATFORM_SECRETS.items():
        assert name not in environment
        assert value not in outcome.output
    assert environment["DEMO_FIXED"] == "fixed"
    assert environment["DEMO_PASSED_THROUGH"] == "yes"
    assert "DEMO_NOT_NAMED" not in environment
    assert environment["PATH"] == os.environ["PATH"]
    assert environment["LANG"] == "C.UTF-8"
    assert environment["TZ"] == "UTC"
    # The allow-list, the SDK's own safe defaults, the operator's names, and what Python itself
    # sets in a child (LC_CTYPE when it coerces the C locale): nothing else.
    sdk_defaults = {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"}
    allowed = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "DEMO_FIXED", "DEMO_PASSED_THROUGH", "LC_CTYPE"}
    assert set(environment) <= allowed | sdk_defaults


# --- headers are write-only ---------------------------------------------------------------------------


def test_headers_are_stored_encrypted_and_only_shown_by_name_and_hint(tenant, owner_client):
    value = "Bearer header-value-canary-9876"
    created = create(owner_client, {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": value}})
    assert created.status_code == 201
    assert created.json()["headers"] == [{"name": "Authorization", "hint": "…9876"}]
    plugin = Plugin.objects.get(name="srv")
    assert "headers" not in plugin.config
    assert value not in plugin.secrets_encrypted
    responses = [
        created,
        owner_client.get("/api/plugins"),
        owner_client.get("/api/plugins/srv"),
        owner_client.get("/api/runtime/mcp"),
        owner_client.patch("/api/plugins/srv", {"description": "changed"}, format="json"),
    ]
    for response in responses:
        assert response.status_code == 200 or response.status_code == 201
        assert value not in response.content.decode()
        assert "header-value-canary" not in response.content.decode()
    assert mcp_spec(Plugin.objects.get(name="srv")).headers == (("Authorization", value),)
    assert value not in json.dumps(list(AuditLog.objects.values_list("data", flat=True)))


def test_patch_replaces_headers_only_when_it_names_them(tenant, owner_client):
    create(owner_client, {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer old-1111"}})
    kept = owner_client.patch("/api/plugins/srv", {"config": {"url": "https://other.example/mcp"}}, format="json")
    assert kept.status_code == 200, kept.content
    assert kept.json()["config"]["url"] == "https://other.example/mcp"
    assert mcp_spec(Plugin.objects.get(name="srv")).headers == (("Authorization", "Bearer old-1111"),)

    replaced = owner_client.patch(
        "/api/plugins/srv",
        {"config": {"url": "https://other.example/mcp", "headers": {"X-Api-Key": "new-key-2222"}}},
        format="json",
    )
    assert replaced.json()["headers"] == [{"name": "X-Api-Key", "hint": "…222"}]
    assert mcp_spec(Plugin.objects.get(name="srv")).headers == (("X-Api-Key", "new-key-2222"),)

    cleared = owner_client.patch(
        "/api/plugins/srv", {"config": {"url": "https://other.example/mcp", "headers": {}}}, format="json"
    )
    assert cleared.json()["headers"] == []
    assert Plugin.objects.get(name="srv").secrets_encrypted == ""


# --- the data migration --------------------------------------------------------------------------------


def test_the_migration_converts_allowed_stdio_rows_disables_the_rest_and_encrypts_headers(
    tenant, other_tenant, monkeypatch
):
    from django.apps import apps

    from apps.agents.crypto import encrypt_secret

    migration = importlib.import_module("apps.tools.migrations.0003_stdio_to_definitions_encrypt_headers")
    monkeypatch.setenv("MCP_STDIO_ALLOWED_COMMANDS", f"{sys.executable},/usr/bin/npx")
    allowed = Plugin.objects.create(
        tenant=tenant,
        name="files",
        kind="mcp",
        config={"transport": "stdio", "command": sys.executable, "args": ["-m", "files"], "env": {"MODE": "x"}},
        secrets_encrypted=encrypt_secret(json.dumps({"env": {"TOKEN": "env-secret"}})),
    )
    same_name_elsewhere = Plugin.objects.create(
        tenant=other_tenant, name="files", kind="mcp", config={"command": "/usr/bin/npx", "args": ["srv"]}
    )
    refused = Plugin.objects.create(
        tenant=tenant, name="shell", kind="mcp", config={"command": "/bin/sh", "args": ["-c", "id"]}
    )
    http = Plugin.objects.create(
        tenant=tenant,
        name="web",
        kind="mcp",
        config={"transport": "http", "url": "https://mcp.example.com/mcp", "headers": {"X-Team": "plain-value"}},
        secrets_encrypted=encrypt_secret(json.dumps({"headers": {"Authorization": "Bearer s"}})),
    )

    migration.forwards(apps, None)

    allowed.refresh_from_db()
    assert allowed.config == {"transport": "stdio"}
    assert allowed.secrets_encrypted == ""
    definition = allowed.definition
    assert (definition.name, definition.command, definition.args) == ("files", sys.executable, ["-m", "files"])
    assert definition.env == {"MODE": "x"}
    assert list(definition.granted_tenants.all()) == [tenant]
    assert mcp_spec(allowed).env == (("MODE", "x"), ("TOKEN", "env-secret"))

    same_name_elsewhere.refresh_from_db()
    assert same_name_elsewhere.definition.name == "files-2"
    assert list(same_name_elsewhere.definition.granted_tenants.all()) == [other_tenant]

    refused.refresh_from_db()
    assert (refused.enabled, refused.status, refused.definition) == (False, "error", None)
    assert "not in MCP_STDIO_ALLOWED_COMMANDS" in refused.status_message
    with pytest.raises(Exception, match="HTTP MCP servers only"):
        mcp_spec(refused)
    with pytest.raises(Exception, match="HTTP MCP servers only"):
        services.plugin_toggle(tenant=tenant, actor=ACTOR, name="shell", enabled=True)

    http.refresh_from_db()
    assert http.config == {"transport": "http", "url": "https://mcp.example.com/mcp"}
    assert services.plugin_secrets(http) == {"headers": {"X-Team": "plain-value", "Authorization": "Bearer s"}}
    assert PluginDefinition.objects.count() == 2


# --- Python plugins: no tenant input reaches an import ------------------------------------------------------


def test_no_tenant_input_imports_a_module(tenant, owner_client, settings, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    outside = tmp_path / "outside"
    outside.mkdir()
    # Importable from sys.path but not part of the plugins package: must never be loaded.
    (outside / "evilplugin.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "from apps.tools.plugins import PythonPlugin\nplugin = PythonPlugin(name='evilplugin')\n"
    )
    monkeypatch.syspath_prepend(str(outside))
    plugins.python_plugins.cache_clear()
    try:
        for name in ("evilplugin", "os", "subprocess"):
            assert owner_client.put(f"/api/plugins/{name}/toggle", {"enabled": True}, format="json").status_code == 404
            assert owner_client.post(f"/api/plugins/{name}/execute/x", {}, format="json").status_code == 404
            assert owner_client.get(f"/api/plugins/{name}").status_code == 404
        for name in ("evil.plugin", "apps.tools.services", "../evilplugin"):
            assert owner_client.put(f"/api/plugins/{name}/toggle").status_code in (400, 404)
        # Even a row of kind python with that name (only an operator could make one) imports nothing.
        Plugin.objects.create(tenant=tenant, name="evilplugin", kind="python", enabled=True)
        assert tool_for_tenant(tenant, "evilplugin__x") is None
        assert owner_client.get("/api/plugins/evilplugin").json()["status"] == "unavailable"
        assert not marker.exists()
        assert "evilplugin" not in sys.modules
        assert "evilplugin" not in plugins.python_plugins().plugins
    finally:
        plugins.python_plugins.cache_clear()
