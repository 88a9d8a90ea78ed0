"""The secret canary: distinct secrets planted on every path into the platform (a user message, a
page `http_get` fetches, an MCP tool's output, a `remember` call, tool arguments, a workspace write,
the model's own streamed answer, an image URL) must appear in no database row, no event (logged or
pushed), no log line and no request the model server received.

The secrets are assembled from pieces so that scanners run on this repository do not flag the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from apps.agents.models import Agent, CatalogModel, ProviderKind
from apps.conversations import services
from apps.conversations.models import ToolCall, Turn
from apps.conversations.turns.services import turn_resume
from apps.events.services import tenant_group
from apps.policy.models import Approval
from apps.policy.services import tool_rule_set
from apps.tenancy.principal import Actor
from apps.tools import services as tool_services
from apps.tools.builtins.http_get import build_http_get_tool
from apps.tools.http_client import SafeHttpClient
from apps.tools.mcp_client import manager
from apps.tools.registry import Tool, builtin_registry
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.usefixtures("fast_providers")]

DEMO_MCP_SERVER = Path(__file__).resolve().parent.parent / "tools" / "mcp_servers" / "demo_server.py"
ACTOR = Actor.system("test")

SECRETS = {
    "user message (OpenAI project key)": "sk-" + "proj-" + "Cn4ryUs3rK3y0123456789abcdefGHIJKLMNOPqrstuv_wx-YZ",
    "http_get page (AWS key id)": "AKIA" + "CANARY7PAGE0KEY9",
    "http_get page (AWS secret)": "wJalrXUtnFEMI/K7MDENG/" + "CaNaRyPaGeSeCrEt0001",
    "MCP output (GitHub token)": "ghp_" + "CanaryMcp0utput1234" + "5678abcdefghijklmNOP",
    "remember (password in URL)": "Canary-" + "DbP4ss-77x",
    "tool arguments (access token)": "ya29." + "CanaryArgT0ken" + "9876xyzXYZ",
    "workspace write (Stripe key)": "sk_" + "live_" + "CanaryW0rkspace000000001",
    "streamed answer (Slack token)": "xoxb-" + "1234567890-1234567890123-" + "CanaryStreamedAnswer0001",
    "image URL (password)": "Img" + "P4ss-Canary-31",
    "traceback in the log (Anthropic key)": "sk-"
    + "ant-api03-"
    + "CanaryTraceback0123456789abcdefghijklmnopqrstuvwxyzAB-CDEFAA",
}


# --- a page with credentials on it -------------------------------------------------------------------


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (
            "<h1>Deploy notes</h1>\n"
            f"AWS_ACCESS_KEY_ID={SECRETS['http_get page (AWS key id)']}\n"
            f'aws_secret_access_key = "{SECRETS["http_get page (AWS secret)"]}"\n'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/notes"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def loopback_http_get(monkeypatch):
    """http_get refuses loopback; the page lives on loopback, so this test's http_get may reach it
    (the same tool, with the client the http_get tests use)."""
    tool = build_http_get_tool(lambda: SafeHttpClient(allow_loopback=True))
    monkeypatch.setitem(builtin_registry._tools, "http_get", tool)


@pytest.fixture
def canary_plugin(tenant, settings, tmp_path):
    """The demo MCP server over stdio (an operator's definition, granted to the tenant), started
    with the GitHub token in its environment; its `secret_env` tool prints it."""
    from apps.tools.models import PluginDefinition

    settings.VAR_DIR = tmp_path / "var"
    settings.MCP_CONNECT_TIMEOUT_SECONDS = 30.0
    settings.MCP_CALL_TIMEOUT_SECONDS = 20.0
    definition = PluginDefinition.objects.create(
        name="demo", description="The tests' demo server", command=sys.executable, args=[str(DEMO_MCP_SERVER)]
    )
    tool_services.plugin_definition_save(
        actor=ACTOR, definition=definition, secret_env={"DEMO_TOKEN": SECRETS["MCP output (GitHub token)"]}
    )
    definition.granted_tenants.add(tenant)
    plugin = tool_services.plugin_toggle(tenant=tenant, actor=ACTOR, name="demo", enabled=True)
    yield plugin
    manager.close_all()


def _broken_tool(_context, _arguments):
    # A tool with a bug whose exception quotes a credential: execute_tool logs its traceback.
    raise RuntimeError(f"upstream rejected {SECRETS['traceback in the log (Anthropic key)']}")


@pytest.fixture
def broken_tool(monkeypatch):
    tool = Tool(name="broken", description="Fails.", parameters={"type": "object"}, handler=_broken_tool)
    monkeypatch.setitem(builtin_registry._tools, "broken", tool)


@pytest.fixture
def canary_agent(tenant, make_provider, canary_plugin, loopback_http_get, broken_tool, settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "workspaces"
    settings.TOKEN_BATCH_MS = 0  # every streamed chunk is its own batch: the hardest case
    provider = make_provider(tenant, kind=ProviderKind.OPENAI, name="oai", models=["stub-small"])
    model = CatalogModel.objects.get(provider=provider, model_id="stub-small")
    return Agent.objects.create(
        tenant=tenant,
        name="canary",
        guide_model=model,
        enabled_tools=["broken", "http_get", "remember", "workspace_write", "demo__secret_env"],
    )


# --- where secrets could end up ----------------------------------------------------------------------


class _Lines(logging.Handler):
    """Every record that reaches the root logger, formatted with its traceback."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines(caplog) -> Iterator[tuple[pytest.LogCaptureFixture, _Lines]]:
    caplog.set_level(logging.DEBUG)
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield caplog, handler
    finally:
        root.removeHandler(handler)


def _scan_database(secrets: dict[str, str]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Every text, varchar, json and jsonb column of every table in the schema, by SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = current_schema()
              AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'character')
              AND table_name IN (
                SELECT table_name FROM information_schema.tables
                WHERE table_schema = current_schema() AND table_type = 'BASE TABLE')
            ORDER BY table_name, column_name
            """
        )
        columns: dict[str, list[str]] = {}
        for table, column in cursor.fetchall():
            columns.setdefault(table, []).append(column)
        found: dict[str, list[str]] = {}
        figures = {"tables": len(columns), "columns": 0, "rows": 0, "cells": 0}
        names = list(secrets)
        for table, cols in columns.items():
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT count(*) FROM {quoted}")  # noqa: S608 - names from the catalog
            rows = cursor.fetchone()[0]
            figures["columns"] += len(cols)
            figures["rows"] += rows
            figures["cells"] += rows * len(cols)
            if not rows:
                continue
            checks = ", ".join(
                f"count(*) FILTER (WHERE strpos({connection.ops.quote_name(c)}::text, %s) > 0)"
                for c in cols
                for _ in names
            )
            cursor.execute(f"SELECT {checks} FROM {quoted}", [secrets[n] for _ in cols for n in names])  # noqa: S608
            counts = iter(cursor.fetchone())
            for column in cols:
                for name in names:
                    if next(counts):
                        found.setdefault(name, []).append(f"{table}.{column}")
    return found, figures


def _leaks(texts: list[str], secrets: dict[str, str]) -> dict[str, int]:
    return {name: n for name, value in secrets.items() if (n := sum(value in text for text in texts))}


def _files_under(root: Path) -> list[str]:
    return [path.read_text(errors="replace") for path in root.rglob("*") if path.is_file()] if root.exists() else []


def _run_and_collect_pushes(tenant, action) -> tuple[object, list[dict]]:
    """Run `action` while listening to the tenant's channel group; the pushes that arrive until
    the turn's last event (or a quiet second) are returned with its result."""

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(tenant_group(tenant.pk), channel)
        result = await sync_to_async(action)()
        pushed = []
        with contextlib.suppress(TimeoutError):
            while True:
                message = await asyncio.wait_for(layer.receive(channel), timeout=3)
                pushed.append(message["event"])
                if message["event"]["type"] in ("chat_complete", "turn_failed", "approval_request"):
                    break
        await layer.group_discard(tenant_group(tenant.pk), channel)
        return result, pushed

    return async_to_sync(scenario)()


def _post(tenant, session, parts, capture):
    with capture(execute=True):
        _, turn = services.message_post(tenant=tenant, session=session, role="user", parts=parts)
    return turn


def test_no_planted_secret_reaches_a_row_an_event_a_log_line_or_the_model(
    tenant, canary_agent, page_url, model_server, log_lines, django_capture_on_commit_callbacks, settings, capsys
):
    caplog, root_lines = log_lines
    slack = SECRETS["streamed answer (Slack token)"]
    model_server.script(
        [
            Reply(
                tool_calls=[
                    ("http_get", {"url": f"{page_url}?access_token={SECRETS['tool arguments (access token)']}"}),
                    ("demo__secret_env", {}),
                    (
                        "remember",
                        {
                            "fact": f"The staging database is postgres://app:{SECRETS['remember (password in URL)']}"
                            "@db.internal:5432/app",
                            "category": "infra",
                        },
                    ),
                    (
                        "workspace_write",
                        {"path": "notes/deploy.txt", "content": SECRETS["workspace write (Stripe key)"]},
                    ),
                    ("broken", {}),
                ]
            ),
            # The answer repeats a secret it was never shown, split across streamed chunks.
            Reply(
                text=f"All done. Use the bot token {slack} for the channel.",
                chunks=[
                    "All done. Use the bot ",
                    "token ",
                    slack[:9],
                    slack[9:20],
                    slack[20:],
                    " for the ",
                    "channel.",
                ],
            ),
        ]
    )
    session = services.session_create(tenant=tenant, agent=canary_agent)
    # An image part with credentials in its URL, stored without a turn (the stub model has no vision).
    services.message_post(
        tenant=tenant,
        session=session,
        role="user",
        auto_run=False,
        parts=[
            {"type": "image", "url": f"https://bob:{SECRETS['image URL (password)']}@img.example.com/a.png?token=t0k"}
        ],
    )
    user_text = f"Deploy with {SECRETS['user message (OpenAI project key)']} and read the notes, please."
    turn, pushed = _run_and_collect_pushes(
        tenant,
        lambda: _post(tenant, session, [{"type": "text", "text": user_text}], django_capture_on_commit_callbacks),
    )
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    calls = {c.name: c for c in ToolCall.objects.filter(turn=turn)}
    assert set(calls) == {"http_get", "demo__secret_env", "remember", "workspace_write", "broken"}
    assert calls.pop("broken").error == "Tool failed: RuntimeError"
    assert all(c.status == ToolCall.Status.COMPLETED for c in calls.values()), {n: c.error for n, c in calls.items()}
    # The tools ran with the real arguments and saw the real secrets, and what is kept is redacted.
    assert "[REDACTED:aws_access_key]" in calls["http_get"].result
    assert "[REDACTED:github_token]" in calls["demo__secret_env"].result
    assert "[REDACTED:slack_token]" in turn.output_message.text
    assert len(model_server.requests) == 2

    found, figures = _scan_database(SECRETS)
    from apps.events.models import Event

    events = [json.dumps(e.data) for e in Event.objects.filter(tenant=tenant)]
    pushed_texts = [json.dumps(p) for p in pushed]
    logs = [r.getMessage() for r in caplog.records] + [caplog.text] + root_lines.lines
    requests = [json.dumps(body) for body in model_server.requests]
    files = _files_under(Path(settings.WORKSPACE_ROOT))
    with capsys.disabled():
        print(
            f"\nsecret canary: {len(SECRETS)} secrets; database: {figures['tables']} tables, {figures['columns']} "
            f"text/json columns, {figures['rows']} rows, {figures['cells']} cells; {len(events)} event rows, "
            f"{len(pushed)} pushed events; {len(caplog.records)} log records, {len(root_lines.lines)} root-handler "
            f"lines; {len(requests)} model requests; {len(files)} workspace files"
        )
    assert found == {}
    assert _leaks(events, SECRETS) == {}
    assert _leaks(pushed_texts, SECRETS) == {}
    assert _leaks(logs, SECRETS) == {}
    assert _leaks(requests, SECRETS) == {}
    assert _leaks(files, SECRETS) == {}
    assert {"tool_call", "tool_result", "chat_token", "chat_complete"} <= {p["type"] for p in pushed}
    assert any("upstream rejected [REDACTED:model_provider_key]" in line for line in root_lines.lines)
    assert len(events) > 10


def test_an_approved_call_runs_with_the_arguments_its_approver_saw(
    tenant, canary_agent, page_url, model_server, django_capture_on_commit_callbacks
):
    """A gated call with a secret in its arguments: the approval shows them redacted, its hash
    is of what it shows, and once approved exactly that runs (the page is fetched with the
    redacted URL); nothing runs that the approver did not see."""
    token = SECRETS["tool arguments (access token)"]
    tool_rule_set(tenant=tenant, actor=ACTOR, tool_name="http_get", action="require_approval")
    model_server.script(
        [Reply(tool_calls=[("http_get", {"url": f"{page_url}?access_token={token}"})]), Reply(text="Fetched.")]
    )
    session = services.session_create(tenant=tenant, agent=canary_agent)
    turn = _post(tenant, session, [{"type": "text", "text": "read the notes"}], django_capture_on_commit_callbacks)
    turn.refresh_from_db()
    assert turn.status == Turn.Status.WAITING_APPROVAL
    approval = Approval.objects.get(turn=turn)
    shown_url = approval.arguments["url"]
    assert token not in shown_url
    assert "[REDACTED:" in shown_url

    with django_capture_on_commit_callbacks(execute=True):
        turn_resume(tenant=tenant, actor=ACTOR, actor_role="owner", approval=approval, approve=True)
    turn.refresh_from_db()
    assert turn.status == Turn.Status.COMPLETED, turn.error
    call = ToolCall.objects.get(turn=turn)
    assert call.status == ToolCall.Status.COMPLETED, call.error
    assert call.arguments == approval.arguments
    fetched = json.loads(call.result)
    assert fetched["status"] == 200
    assert "REDACTED" in fetched["url"]  # the URL the approver saw is the one fetched
    assert token not in fetched["url"]
    assert all(token not in json.dumps(body) for body in model_server.requests)
