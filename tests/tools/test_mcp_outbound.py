"""HTTP MCP servers go through the outbound policy: refused at registration (400 that says
why), and at every connection (DNS may have changed since), with a loopback listener proving
nothing was connected to. An allowed name reaches a real MCP server through the pinned
asynchronous transport."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from apps.tenancy.principal import Actor
from apps.tools import plugins, services
from apps.tools.models import Plugin
from apps.tools.registry import ToolContext, execute_tool, tool_for_tenant
from tests.stubs.listener import hostile_urls

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_dns")]
ACTOR = Actor.system("test")


def register(client, name: str, url: str):
    return client.post("/api/plugins", {"name": name, "config": {"url": url}}, format="json")


def call(tenant, name: str, **arguments):
    tool = tool_for_tenant(tenant, name)
    assert tool is not None, name
    return execute_tool(tool=tool, arguments=arguments, context=ToolContext(tenant=tenant))


def test_registration_refuses_hostile_urls_and_says_why(owner_client, listener):
    for url in hostile_urls(listener.port):
        response = register(owner_client, "web", url.rstrip("/") + "/mcp")
        assert response.status_code == 400, (url, response.json())
        message = json.dumps(response.json()["fields"]["config.url"])
        assert "Blocked: " in message, (url, message)
        assert "OUTBOUND_ALLOW_PRIVATE_CIDRS" in message
    assert not Plugin.objects.filter(name="web").exists()
    assert listener.connections == 0


def test_a_call_after_the_name_was_rebound_is_refused_without_connecting(tenant, listener, fake_dns):
    fake_dns["rebind.test"] = ["93.184.216.34"]  # public when registered...
    url = f"http://rebind.test:{listener.port}/mcp"
    plugin = services.plugin_create(tenant=tenant, actor=ACTOR, name="web", config={"url": url}, discover=False)
    tools, _ = plugins.mcp_discovered_tools("web", [{"name": "add", "input_schema": {"type": "object"}}], {})
    Plugin.objects.filter(pk=plugin.pk).update(status=Plugin.Status.READY, discovered_tools=tools)
    fake_dns["rebind.test"] = ["127.0.0.1"]  # ...loopback when called

    outcome = call(tenant, "web__add", a=1, b=2)

    assert not outcome.ok
    assert "rebind.test resolves to 127.0.0.1, which is a loopback address" in outcome.error
    assert listener.connections == 0


def test_an_allowed_name_reaches_the_server_through_the_pinned_transport(
    tenant, owner_client, settings, fake_dns, demo_http_server
):
    """OUTBOUND_ALLOW_HOSTS names the MCP gateway; loopback addresses themselves stay refused.
    (The name is `localhost` because the SDK's server checks the Host header against it, which
    also shows the request carries the name while the connection goes to the checked address.)"""
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    settings.OUTBOUND_ALLOW_HOSTS = ["localhost"]
    fake_dns["localhost"] = ["127.0.0.1"]
    port = urlsplit(demo_http_server).port

    created = register(owner_client, "gw", f"http://localhost:{port}/mcp")

    assert created.status_code == 201, created.content
    assert created.json()["status"] == "ready", created.json()["status_message"]
    assert call(tenant, "gw__add", a=20, b=22).output == "42"
    assert register(owner_client, "direct", demo_http_server).status_code == 400
