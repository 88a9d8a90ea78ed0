"""MCP plugins against a real MCP server built with the `mcp` SDK (tests/tools/mcp_servers/demo_server.py):
spawned over stdio from an operator's definition a tenant enabled, or reached over streamable HTTP."""

from __future__ import annotations

import json
import sys

import pytest

from apps.agents.models import Agent
from apps.tenancy.principal import Actor
from apps.tools import services
from apps.tools.mcp_client import manager
from apps.tools.models import Plugin
from apps.tools.plugins import mcp_spec
from apps.tools.registry import SideEffect, ToolContext, execute_tool, tool_for_tenant, tools_for_agent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mcp_settings")]
ACTOR = Actor.system("test")
DEMO_TOOLS = {
    "demo__echo",
    "demo__add",
    "demo__secret_env",
    "demo__environment",
    "demo__fail",
    "demo__crash",
    "demo__files_search",
    "demo__pid",
    "demo__record_and_wait",
}


def register(client, name: str, config: dict, **extra):
    return client.post("/api/plugins", {"name": name, "config": config, **extra}, format="json")


def call(tenant, name: str, **arguments):
    tool = tool_for_tenant(tenant, name)
    assert tool is not None, name
    return execute_tool(tool=tool, arguments=arguments, context=ToolContext(tenant=tenant))


def test_an_enabled_stdio_definition_is_discovered_and_its_tools_are_called(tenant, owner_client, demo_definition):
    demo_definition.granted_tenants.add(tenant)
    enabled = owner_client.put("/api/plugins/demo/toggle", {"enabled": True}, format="json")
    assert enabled.status_code == 200, enabled.content
    body = enabled.json()
    assert body["status"] == "ready", body["status_message"]
    assert body["registered_by"] == "operator"
    assert body["config"] == {"transport": "stdio"}  # the argv is the operator's, not shown
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert set(tools) == DEMO_TOOLS
    assert tools["demo__files_search"]["remote_name"] == "files.search"
    assert tools["demo__add"]["parameters"]["required"] == ["a", "b"]
    assert {tool["side_effect"] for tool in tools.values()} == {SideEffect.EXTERNAL}

    echoed = owner_client.post("/api/plugins/demo/execute/echo", {"arguments": {"text": "héllo"}}, format="json")
    assert echoed.status_code == 200, echoed.content
    assert echoed.json() == {**echoed.json(), "ok": True, "output": "héllo", "tool": "demo__echo"}
    assert call(tenant, "demo__add", a=2, b=40).output == "42"
    assert call(tenant, "demo__files_search", query="q").output == "searched q"


def test_an_agent_calls_mcp_tools_it_enables(tenant, demo_enabled):
    agent = Agent.objects.create(tenant=tenant, name="helper", enabled_tools=["demo__echo", "calculator"])
    tools = {tool.name: tool for tool in tools_for_agent(agent)}
    assert list(tools) == ["calculator", "demo__echo"]
    outcome = execute_tool(
        tool=tools["demo__echo"], arguments={"text": "from a turn"}, context=ToolContext(tenant=tenant, agent=agent)
    )
    assert outcome.ok
    assert outcome.output == "from a turn"


def test_tool_errors_and_schema_errors_reach_the_caller(tenant, demo_enabled):
    failed = call(tenant, "demo__fail", message="no luck")
    assert not failed.ok
    assert failed.error
    wrong = call(tenant, "demo__add", a="two", b=2)
    assert not wrong.ok
    assert "Invalid arguments" in wrong.error


def test_the_operators_env_and_secret_env_reach_the_server(tenant, demo_definition, mcp_settings):
    demo_definition.env = {"DEMO_MODE": "plain"}
    services.plugin_definition_save(actor=ACTOR, definition=demo_definition, secret_env={"DEMO_TOKEN": "s3cr3t-value"})
    demo_definition.granted_tenants.add(tenant)
    services.plugin_toggle(tenant=tenant, actor=ACTOR, name="demo", enabled=True)
    outcome = call(tenant, "demo__secret_env")
    assert outcome.data == "DEMO_MODE=plain,DEMO_TOKEN=s3cr3t-value"  # the server had it
    assert outcome.output == "DEMO_MODE=plain,DEMO_TOKEN=[REDACTED:secret_keyword]"  # what is kept and shown
    assert "s3cr3t-value" not in demo_definition.secrets_encrypted


def test_calls_share_one_server_process_until_disconnected(tenant, owner_client, demo_enabled):
    first, second = call(tenant, "demo__pid").output, call(tenant, "demo__pid").output
    assert first == second

    runtime = owner_client.get("/api/runtime/mcp").json()
    assert runtime["count"] == 1
    assert [client["name"] for client in runtime["results"]] == ["demo"]
    assert runtime["results"][0]["connection"]["connected"] is True
    assert runtime["results"][0]["connection"]["calls"] >= 2

    closed = owner_client.post("/api/runtime/mcp/clients/demo/disconnect")
    assert closed.status_code == 200
    assert closed.json() == {"name": "demo", "disconnected": True}
    assert owner_client.get("/api/runtime/mcp").json()["results"][0]["connection"] is None
    assert call(tenant, "demo__pid").output != first  # reconnected: a new server process


def test_a_crashed_server_is_restarted_on_the_next_call(tenant, demo_enabled):
    before = call(tenant, "demo__pid").output
    crashed = call(tenant, "demo__crash")
    assert not crashed.ok
    after = call(tenant, "demo__pid")
    assert after.ok
    assert after.output != before


def test_an_operators_change_to_the_definition_renews_the_connection(tenant, demo_enabled, demo_definition):
    before = call(tenant, "demo__pid").output
    demo_definition.env = {"DEMO_X": "1"}
    services.plugin_definition_save(actor=ACTOR, definition=demo_definition)
    assert call(tenant, "demo__secret_env").output == "DEMO_X=1"
    assert call(tenant, "demo__pid").output != before


def test_discover_again_refreshes_the_tools(tenant, owner_client, demo_enabled):
    discovered = owner_client.post("/api/runtime/mcp/clients/demo/discover")
    assert discovered.status_code == 200
    assert discovered.json()["status"] == "ready"
    assert {tool["name"] for tool in discovered.json()["tools"]} == DEMO_TOOLS


def test_a_server_that_cannot_start_leaves_the_plugin_in_error(tenant, owner_client, demo_definition, tmp_path):
    demo_definition.args = [str(tmp_path / "no_such_server.py")]
    demo_definition.save()
    demo_definition.granted_tenants.add(tenant)
    enabled = owner_client.put("/api/plugins/demo/toggle", {"enabled": True}, format="json")
    assert enabled.status_code == 200
    assert enabled.json()["status"] == "error"
    assert enabled.json()["status_message"]
    assert owner_client.get("/api/runtime/mcp").json()["results"][0]["status"] == "error"


def test_a_disabled_mcp_plugin_drops_its_tools_and_connection(tenant, owner_client, demo_enabled):
    assert call(tenant, "demo__echo", text="x").ok
    assert str(demo_enabled.pk) in manager.status()
    owner_client.put("/api/plugins/demo/toggle", {"enabled": False}, format="json")
    assert tool_for_tenant(tenant, "demo__echo") is None
    assert str(demo_enabled.pk) not in manager.status()


def test_a_server_over_streamable_http(tenant, owner_client, settings, demo_http_server):
    settings.OUTBOUND_ALLOW_LOOPBACK = True  # the demo server listens on loopback
    created = register(
        owner_client, "web", {"url": demo_http_server, "headers": {"Authorization": "Bearer the-token-1234"}}
    )
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "ready", created.json()["status_message"]
    assert created.json()["registered_by"] == "tenant"
    assert created.json()["headers"] == [{"name": "Authorization", "hint": "…1234"}]
    assert call(tenant, "web__add", a=1, b=2).output == "3"
    assert mcp_spec(Plugin.objects.get(name="web")).headers == (("Authorization", "Bearer the-token-1234"),)


def test_private_addresses_are_refused_unless_allowed(tenant, owner_client, settings, demo_http_server):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    refused = register(owner_client, "web", {"url": demo_http_server})
    assert refused.status_code == 400
    assert "loopback address" in json.dumps(refused.json()["fields"])
    assert "OUTBOUND_ALLOW_PRIVATE_CIDRS" in json.dumps(refused.json()["fields"])

    settings.MCP_ALLOW_PRIVATE_URLS = True  # the deprecated switch still works
    assert register(owner_client, "web", {"url": demo_http_server}).json()["status"] == "ready"


def test_discover_and_disconnect_only_take_mcp_plugins(owner_client):
    owner_client.put("/api/plugins/text/toggle", {"enabled": True}, format="json")
    assert owner_client.post("/api/runtime/mcp/clients/text/discover").status_code == 404
    assert owner_client.post("/api/runtime/mcp/clients/nope/disconnect").status_code == 404


def test_concurrent_calls_from_many_threads_share_one_session(tenant, demo_enabled):
    from concurrent.futures import ThreadPoolExecutor

    tool = tool_for_tenant(tenant, "demo__add")
    context = ToolContext(tenant=tenant)

    def add(n: int) -> str:
        return execute_tool(tool=tool, arguments={"a": n, "b": 1}, context=context).output

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(add, range(40)))
    assert results == [str(n + 1) for n in range(40)]
    assert len({call(tenant, "demo__pid").output for _ in range(3)}) == 1
    assert manager.status()[str(demo_enabled.pk)]["calls"] >= 43


def test_the_demo_interpreter_is_the_one_the_definition_names(demo_definition):
    # The operator's argv is used as given: the tests' interpreter and the demo server's path.
    assert demo_definition.command == sys.executable
