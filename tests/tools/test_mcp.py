"""MCP plugins against a real MCP server built with the `mcp` SDK (tests/tools/mcp_servers/demo_server.py):
spawned over stdio by the platform's client, or reached over streamable HTTP."""

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

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("mcp_stdio_allowed")]
ACTOR = Actor.system("test")


def register(client, name: str, config: dict, **extra):
    return client.post("/api/plugins", {"name": name, "config": config, **extra}, format="json")


def call(tenant, name: str, **arguments):
    tool = tool_for_tenant(tenant, name)
    assert tool is not None, name
    return execute_tool(tool=tool, arguments=arguments, context=ToolContext(tenant=tenant))


def test_a_stdio_server_is_discovered_and_its_tools_are_called(tenant, owner_client, demo_stdio_config):
    created = register(owner_client, "demo", demo_stdio_config)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "ready", body["status_message"]
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert set(tools) == {
        "demo__echo",
        "demo__add",
        "demo__secret_env",
        "demo__fail",
        "demo__crash",
        "demo__files_search",
        "demo__pid",
    }
    assert tools["demo__files_search"]["remote_name"] == "files.search"
    assert tools["demo__add"]["parameters"]["required"] == ["a", "b"]
    assert {tool["side_effect"] for tool in tools.values()} == {SideEffect.EXTERNAL}

    echoed = owner_client.post("/api/plugins/demo/execute/echo", {"arguments": {"text": "héllo"}}, format="json")
    assert echoed.status_code == 200, echoed.content
    assert echoed.json() == {**echoed.json(), "ok": True, "output": "héllo", "tool": "demo__echo"}

    added = call(tenant, "demo__add", a=2, b=40)
    assert added.ok
    assert added.output == "42"
    searched = call(tenant, "demo__files_search", query="q")
    assert searched.ok
    assert searched.output == "searched q"


def test_an_agent_calls_mcp_tools_it_enables(tenant, demo_stdio_config):
    services.plugin_create(tenant=tenant, actor=ACTOR, name="demo", config=demo_stdio_config)
    agent = Agent.objects.create(tenant=tenant, name="helper", enabled_tools=["demo__echo", "calculator"])
    tools = {tool.name: tool for tool in tools_for_agent(agent)}
    assert list(tools) == ["calculator", "demo__echo"]
    outcome = execute_tool(
        tool=tools["demo__echo"], arguments={"text": "from a turn"}, context=ToolContext(tenant=tenant, agent=agent)
    )
    assert outcome.ok
    assert outcome.output == "from a turn"


def test_tool_errors_and_schema_errors_reach_the_caller(tenant, demo_stdio_config):
    services.plugin_create(tenant=tenant, actor=ACTOR, name="demo", config=demo_stdio_config)
    failed = call(tenant, "demo__fail", message="no luck")
    assert not failed.ok
    assert failed.error
    wrong = call(tenant, "demo__add", a="two", b=2)
    assert not wrong.ok
    assert "Invalid arguments" in wrong.error


def test_secrets_reach_the_server_as_environment_and_are_never_shown(tenant, owner_client, demo_stdio_config):
    config = {**demo_stdio_config, "env": {"DEMO_MODE": "plain"}}
    created = register(owner_client, "demo", config, secrets={"env": {"DEMO_TOKEN": "s3cr3t-value"}})
    assert created.status_code == 201
    assert "s3cr3t-value" not in created.content.decode()
    assert created.json()["secrets"] == {"env": ["DEMO_TOKEN"]}
    outcome = call(tenant, "demo__secret_env")
    assert outcome.data == "DEMO_MODE=plain,DEMO_TOKEN=s3cr3t-value"  # the server had it
    assert outcome.output == "DEMO_MODE=plain,DEMO_TOKEN=[REDACTED:secret_keyword]"  # what is kept and shown
    assert "s3cr3t-value" not in owner_client.get("/api/plugins").content.decode()


def test_calls_share_one_server_process_until_disconnected(tenant, owner_client, demo_stdio_config):
    register(owner_client, "demo", demo_stdio_config)
    first, second = call(tenant, "demo__pid").output, call(tenant, "demo__pid").output
    assert first == second

    runtime = owner_client.get("/api/runtime/mcp").json()
    assert [client["name"] for client in runtime] == ["demo"]
    assert runtime[0]["connection"]["connected"] is True
    assert runtime[0]["connection"]["calls"] >= 2

    closed = owner_client.post("/api/runtime/mcp/clients/demo/disconnect")
    assert closed.status_code == 200
    assert closed.json() == {"name": "demo", "disconnected": True}
    assert owner_client.get("/api/runtime/mcp").json()[0]["connection"] is None
    assert call(tenant, "demo__pid").output != first  # reconnected: a new server process


def test_a_crashed_server_is_restarted_on_the_next_call(tenant, demo_stdio_config):
    services.plugin_create(tenant=tenant, actor=ACTOR, name="demo", config=demo_stdio_config)
    before = call(tenant, "demo__pid").output
    crashed = call(tenant, "demo__crash")
    assert not crashed.ok
    after = call(tenant, "demo__pid")
    assert after.ok
    assert after.output != before


def test_a_config_change_renews_the_connection(tenant, demo_stdio_config):
    plugin = services.plugin_create(tenant=tenant, actor=ACTOR, name="demo", config=demo_stdio_config)
    before = call(tenant, "demo__pid").output
    services.plugin_set_config(
        tenant=tenant, actor=ACTOR, plugin=plugin, config={**demo_stdio_config, "env": {"DEMO_X": "1"}}, secrets=None
    )
    assert call(tenant, "demo__secret_env").output == "DEMO_X=1"
    assert call(tenant, "demo__pid").output != before


def test_discover_again_refreshes_the_tools(tenant, owner_client, demo_stdio_config):
    register(owner_client, "demo", demo_stdio_config, discover=False)
    assert owner_client.get("/api/plugins/demo").json()["status"] == "new"
    discovered = owner_client.post("/api/runtime/mcp/clients/demo/discover")
    assert discovered.status_code == 200
    assert discovered.json()["status"] == "ready"
    assert len(discovered.json()["tools"]) == 7


def test_a_server_that_cannot_start_leaves_the_plugin_in_error(tenant, owner_client, tmp_path):
    missing = tmp_path / "no_such_server.py"
    created = register(owner_client, "broken", {"command": sys.executable, "args": [str(missing)]})
    assert created.status_code == 201
    assert created.json()["status"] == "error"
    assert created.json()["status_message"]
    assert owner_client.get("/api/runtime/mcp").json()[0]["status"] == "error"


def test_a_disabled_mcp_plugin_drops_its_tools_and_connection(tenant, owner_client, demo_stdio_config):
    register(owner_client, "demo", demo_stdio_config)
    assert call(tenant, "demo__echo", text="x").ok
    assert str(Plugin.objects.get(name="demo").pk) in manager.status()
    owner_client.put("/api/plugins/demo/toggle", {"enabled": False}, format="json")
    assert tool_for_tenant(tenant, "demo__echo") is None
    assert str(Plugin.objects.get(name="demo").pk) not in manager.status()


def test_only_allowed_commands_may_be_registered_through_the_api(owner_client, settings, demo_stdio_config):
    settings.MCP_STDIO_ALLOWED_COMMANDS = ["/usr/bin/some-other"]
    refused = register(owner_client, "demo", demo_stdio_config)
    assert refused.status_code == 400
    assert "MCP_STDIO_ALLOWED_COMMANDS" in json.dumps(refused.json()["fields"])


def test_a_server_over_streamable_http(tenant, owner_client, settings, demo_http_server):
    settings.MCP_ALLOW_PRIVATE_URLS = True
    created = register(
        owner_client, "web", {"url": demo_http_server}, secrets={"headers": {"Authorization": "Bearer t"}}
    )
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "ready", created.json()["status_message"]
    assert call(tenant, "web__add", a=1, b=2).output == "3"
    assert mcp_spec(Plugin.objects.get(name="web")).headers == (("Authorization", "Bearer t"),)


def test_private_addresses_are_refused_unless_allowed(tenant, owner_client, settings, demo_http_server):
    settings.MCP_ALLOW_PRIVATE_URLS = False
    created = register(owner_client, "web", {"url": demo_http_server})
    assert created.status_code == 201
    assert created.json()["status"] == "error"
    assert "loopback address" in created.json()["status_message"]
    assert "MCP_ALLOW_PRIVATE_URLS" in created.json()["status_message"]


def test_discover_and_disconnect_only_take_mcp_plugins(owner_client):
    owner_client.put("/api/plugins/text/toggle", {"enabled": True}, format="json")
    assert owner_client.post("/api/runtime/mcp/clients/text/discover").status_code == 404
    assert owner_client.post("/api/runtime/mcp/clients/nope/disconnect").status_code == 404


def test_concurrent_calls_from_many_threads_share_one_session(tenant, demo_stdio_config):
    from concurrent.futures import ThreadPoolExecutor

    services.plugin_create(tenant=tenant, actor=ACTOR, name="demo", config=demo_stdio_config)
    tool = tool_for_tenant(tenant, "demo__add")
    context = ToolContext(tenant=tenant)

    def add(n: int) -> str:
        return execute_tool(tool=tool, arguments={"a": n, "b": 1}, context=context).output

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(add, range(40)))
    assert results == [str(n + 1) for n in range(40)]
    assert len({call(tenant, "demo__pid").output for _ in range(3)}) == 1
    assert manager.status()[str(Plugin.objects.get(name="demo").pk)]["calls"] >= 43
