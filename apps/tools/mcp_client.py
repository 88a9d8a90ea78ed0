"""Talking to MCP servers through the official `mcp` SDK, from synchronous code.

Django views and Celery tasks are synchronous; the SDK is async. Each process keeps one event
loop on a daemon thread ("mcp-client") and, on it, one open connection per MCP plugin: the
synchronous callers hand coroutines to that loop and wait for the answer with a timeout.

Why keep connections: opening a stdio session means starting the server process, and for a
Python server built on the SDK that is about a second (imports and the handshake) plus a few
hundred milliseconds to close; a call on an open session takes a few milliseconds (docs/tools.md
has the figures). Connections are closed after MCP_IDLE_SECONDS without a call, when the
plugin's config or generation changes (every process notices the next time it uses it), and
past MCP_MAX_CONNECTIONS the least recently used one goes. After a fork (Celery's prefork
pool) the child starts its own loop on first use; the parent's connections are not its own.

A connection's state lives only on the loop thread; other threads read it through the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.core import outbound
from apps.tools.registry import ToolError

logger = logging.getLogger(__name__)

LIST_TOOLS_MAX_PAGES = 20
# What a stdio server inherits from the platform's environment, besides the names its operator
# lists: enough to find executables and format text, nothing that configures the platform (its
# secret key, database URL, provider keys and encryption key stay in this process).
CHILD_ENV_ALLOWED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


class McpError(ToolError):
    """The MCP server could not be reached or refused the request; the message is safe to show."""


@dataclass(frozen=True)
class McpServerSpec:
    """Everything needed to connect to one plugin's server (secrets included, so never logged)."""

    key: str  # the plugin's id
    tenant_id: str
    plugin_name: str
    transport: str  # stdio | http
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # secrets: kept out of reprs and logs
    env_passthrough: tuple[str, ...] = ()  # names of the platform's variables the operator lets through
    cwd: str = ""
    url: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    generation: int = 1
    timeout_seconds: float | None = None

    @property
    def fingerprint(self) -> str:
        """Changes with anything that needs a new connection (secrets included, hashed)."""
        return hashlib.sha256(repr((repr(self), self.env, self.headers)).encode()).hexdigest()


@dataclass(eq=False)
class _Connection:
    spec: McpServerSpec
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    client: Any = None
    task: asyncio.Task | None = None
    error: str = ""
    opened_at: float = 0.0
    last_used: float = field(default_factory=time.monotonic)
    calls: int = 0
    server_name: str = ""

    def status(self) -> dict[str, Any]:
        return {
            "plugin": self.spec.plugin_name,
            "tenant_id": self.spec.tenant_id,
            "transport": self.spec.transport,
            "connected": self.client is not None and not self.stop.is_set(),
            "connected_at": _iso(self.opened_at) if self.opened_at else None,
            "idle_seconds": round(time.monotonic() - self.last_used, 1),
            "calls": self.calls,
            "server_name": self.server_name,
            "generation": self.spec.generation,
            "pid": os.getpid(),
        }


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).isoformat().replace("+00:00", "Z")


def _describe(exc: BaseException) -> str:
    """The first real error inside anyio's exception groups, as one line."""
    blocked = outbound.blocked_in(exc)
    if blocked is not None:
        return f"{blocked} ({outbound.ALLOW_LIST_HINT})"[:500]
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ToolError):  # our own refusals say what happened already
        return text[:500]
    return f"{type(exc).__name__}: {text}"[:500]


def child_environment(spec: McpServerSpec) -> dict[str, str]:
    """The environment a stdio server starts with: CHILD_ENV_ALLOWED and the operator's
    passthrough names taken from ours, then the definition's own variables (which win).

    The SDK adds its own safe defaults underneath (mcp.client.stdio.get_default_environment:
    HOME, LOGNAME, PATH, SHELL, TERM, USER), never anything else of ours."""
    names = (*CHILD_ENV_ALLOWED, *spec.env_passthrough)
    inherited = {name: os.environ[name] for name in names if name in os.environ}
    return {**inherited, **dict(spec.env)}


def outbound_policy() -> outbound.OutboundPolicy:
    """The outbound policy for HTTP MCP servers: the platform's, widened to every non-metadata
    address by the deprecated MCP_ALLOW_PRIVATE_URLS."""
    policy = outbound.OutboundPolicy.from_settings()
    if settings.MCP_ALLOW_PRIVATE_URLS:
        policy = policy.replace(allow_loopback=True, allow_networks=outbound.EVERYWHERE)
    return policy


def check_url(url: str, *, policy: outbound.OutboundPolicy | None = None) -> None:
    """McpError unless the URL is http(s) and every address its host resolves to now is allowed.
    The transport checks again at each connection (and connects to the address it checked)."""
    policy = policy or outbound_policy()
    try:
        parsed = policy.check_url(url)
        policy.resolve(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
    except outbound.OutboundBlocked as exc:
        raise McpError(f"{exc} ({outbound.ALLOW_LIST_HINT})") from exc
    except outbound.ResolutionFailed as exc:
        raise McpError(str(exc)) from exc


class McpConnectionManager:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._connections: dict[str, _Connection] = {}
        # A fork while another thread holds the lock would leave the child's copy locked forever.
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._loop, self._thread, self._pid, self._connections = None, None, None, {}

    # --- the synchronous face --------------------------------------------------------------------

    def list_tools(self, spec: McpServerSpec) -> list[dict[str, Any]]:
        """The server's tools: `{name, description, input_schema, annotations}` each."""
        return self._run(self._list_tools(spec), self._budget(spec))

    def call_tool(self, spec: McpServerSpec, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """`{is_error, text, structured}` for one call; McpError when the server cannot be reached."""
        return self._run(self._call_tool(spec, name, arguments), self._budget(spec))

    def disconnect(self, key: str) -> bool:
        """Close this process's connection for a plugin; False if there was none."""
        if not self._started():
            return False
        return self._run(self._disconnect(key), settings.MCP_CONNECT_TIMEOUT_SECONDS)

    def status(self) -> dict[str, dict[str, Any]]:
        """This process's open connections by plugin id."""
        if not self._started():
            return {}
        return self._run(self._status(), 5.0)

    def close_all(self) -> None:
        if self._started():
            self._run(self._close_all(), settings.MCP_CONNECT_TIMEOUT_SECONDS)

    # --- the loop thread ---------------------------------------------------------------------------

    def _started(self) -> bool:
        thread = self._thread
        return self._loop is not None and self._pid == os.getpid() and thread is not None and thread.is_alive()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if not self._started():
                # A forked child inherits the parent's objects but not its thread: start afresh.
                self._connections = {}
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._serve, args=(self._loop,), name="mcp-client", daemon=True)
                self._thread.start()
                self._pid = os.getpid()
            return self._loop

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.create_task(self._reap_idle())
        loop.run_forever()

    def _budget(self, spec: McpServerSpec) -> float:
        return settings.MCP_CONNECT_TIMEOUT_SECONDS + (spec.timeout_seconds or settings.MCP_CALL_TIMEOUT_SECONDS) + 5

    def _run(self, coroutine, timeout: float):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._ensure_loop())
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise McpError(f"The MCP server did not answer within {timeout:.0f} seconds.") from exc
        except BaseException:
            # SoftTimeLimitExceeded and friends: stop the call on the loop too, then let it go up.
            future.cancel()
            raise

    # --- coroutines (loop thread only) -------------------------------------------------------------

    async def _connection(self, spec: McpServerSpec) -> _Connection:
        connection = self._connections.get(spec.key)
        if connection is not None and (
            connection.spec.fingerprint != spec.fingerprint or connection.stop.is_set() or connection.task.done()
        ):
            await self._close(connection)
            connection = None
        if connection is None:
            await self._make_room()
            connection = _Connection(spec=spec)
            self._connections[spec.key] = connection
            connection.task = asyncio.get_running_loop().create_task(self._hold(connection))
        try:
            await asyncio.wait_for(connection.ready.wait(), settings.MCP_CONNECT_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            await self._close(connection)
            seconds = settings.MCP_CONNECT_TIMEOUT_SECONDS
            raise McpError(f"The MCP server '{spec.plugin_name}' did not start within {seconds:.0f} s.") from exc
        if connection.client is None:
            self._forget(connection)
            raise McpError(f"Cannot connect to the MCP server '{spec.plugin_name}': {connection.error}")
        connection.last_used = time.monotonic()
        return connection

    async def _hold(self, connection: _Connection) -> None:
        """Open the session, keep it open until told to stop, close it; all in this one task,
        as anyio requires of the SDK's context managers."""
        from mcp import Client

        spec = connection.spec
        try:
            async with AsyncExitStack() as stack:
                transport = await self._transport(spec, stack)
                client = await stack.enter_async_context(Client(transport, cache=None))
                connection.client, connection.opened_at = client, time.time()
                info = getattr(client, "server_info", None)
                connection.server_name = getattr(info, "name", "") or ""
                connection.ready.set()
                await connection.stop.wait()
        except Exception as exc:  # noqa: BLE001 - whatever the transport raised is the connection's error
            connection.error = _describe(exc)
            logger.warning("MCP connection for plugin %s ended: %s", spec.plugin_name, connection.error)
        finally:
            connection.client = None
            connection.stop.set()
            connection.ready.set()  # wake anyone still waiting for the connection
            self._forget(connection)

    async def _transport(self, spec: McpServerSpec, stack: AsyncExitStack):
        if spec.transport == "stdio":
            if not spec.command:
                raise McpError(f"The MCP server '{spec.plugin_name}' has no operator definition to start.")
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            log_dir = Path(settings.VAR_DIR) / "logs" / "mcp"
            log_dir.mkdir(parents=True, exist_ok=True)
            # The server's stderr, kept for whoever debugs it; truncated at each start.
            errlog = stack.enter_context(open(log_dir / f"{spec.key}.log", "w"))  # noqa: SIM115
            parameters = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=child_environment(spec), cwd=spec.cwd or None
            )
            return stdio_client(parameters, errlog=errlog)
        if spec.transport == "http":
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            policy = outbound_policy()
            await asyncio.to_thread(check_url, spec.url, policy=policy)
            timeout = spec.timeout_seconds or settings.MCP_CALL_TIMEOUT_SECONDS
            # Every request of the session goes through the outbound policy's transport: each new
            # connection resolves and checks the host again, so DNS rebinding after the check
            # above reaches nothing internal. The SDK follows same-origin redirects only.
            http = await stack.enter_async_context(
                outbound.async_http_client(
                    restrict_network=True,
                    policy=policy,
                    headers=dict(spec.headers),
                    timeout=httpx2.Timeout(settings.MCP_CONNECT_TIMEOUT_SECONDS, read=timeout + 5),
                )
            )
            return streamable_http_client(spec.url, http_client=http)
        raise McpError(f"Unknown MCP transport '{spec.transport}'.")

    async def _list_tools(self, spec: McpServerSpec) -> list[dict[str, Any]]:
        connection = await self._connection(spec)
        tools, cursor = [], None
        try:
            for _ in range(LIST_TOOLS_MAX_PAGES):
                page = await connection.client.list_tools(cursor=cursor, cache_mode="refresh")
                tools += [
                    {
                        "name": tool.name,
                        "description": tool.description or "",
                        "input_schema": tool.input_schema or {"type": "object"},
                        "annotations": tool.annotations.model_dump(exclude_none=True) if tool.annotations else {},
                    }
                    for tool in page.tools
                ]
                cursor = page.next_cursor
                if not cursor:
                    break
        except Exception as exc:  # noqa: BLE001 - _failed re-raises it as McpError
            await self._failed(connection, exc)
        return tools

    async def _call_tool(self, spec: McpServerSpec, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        connection = await self._connection(spec)
        connection.calls += 1
        timeout = spec.timeout_seconds or settings.MCP_CALL_TIMEOUT_SECONDS
        try:
            result = await connection.client.call_tool(name, arguments, read_timeout_seconds=timeout)
        except Exception as exc:  # noqa: BLE001 - _failed re-raises it as McpError
            await self._failed(connection, exc)
        connection.last_used = time.monotonic()
        return {
            "is_error": bool(result.is_error),
            "text": _content_text(result.content),
            "structured": result.structured_content,
        }

    async def _failed(self, connection: _Connection, exc: Exception) -> None:
        """Turn an exception into McpError; a broken connection is closed so the next call reconnects."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        if not isinstance(exc, MCPError) or exc.code == CONNECTION_CLOSED:
            await self._close(connection)
        message = exc.message if isinstance(exc, MCPError) else _describe(exc)
        raise McpError(f"MCP server '{connection.spec.plugin_name}': {message}") from exc

    async def _close(self, connection: _Connection) -> None:
        self._forget(connection)
        connection.stop.set()
        if connection.task is not None and not connection.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(connection.task), settings.MCP_CONNECT_TIMEOUT_SECONDS)
            except TimeoutError:
                connection.task.cancel()

    def _forget(self, connection: _Connection) -> None:
        if self._connections.get(connection.spec.key) is connection:
            del self._connections[connection.spec.key]

    async def _make_room(self) -> None:
        while len(self._connections) >= max(1, settings.MCP_MAX_CONNECTIONS):
            oldest = min(self._connections.values(), key=lambda c: c.last_used)
            await self._close(oldest)

    async def _disconnect(self, key: str) -> bool:
        connection = self._connections.get(key)
        if connection is None:
            return False
        await self._close(connection)
        return True

    async def _status(self) -> dict[str, dict[str, Any]]:
        return {key: connection.status() for key, connection in self._connections.items()}

    async def _close_all(self) -> None:
        for connection in list(self._connections.values()):
            await self._close(connection)

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(30.0, settings.MCP_IDLE_SECONDS / 2)))
            limit = time.monotonic() - settings.MCP_IDLE_SECONDS
            for connection in list(self._connections.values()):
                if connection.last_used < limit and connection.ready.is_set():
                    with contextlib.suppress(Exception):
                        await self._close(connection)


def _content_text(blocks: list[Any]) -> str:
    """What the model reads of a result: text as is, other content described in brackets."""
    parts = []
    for block in blocks or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {block.mime_type}, not shown]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.uri}]")
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {resource.uri}, binary, not shown]")
        else:
            parts.append(json.dumps(getattr(block, "model_dump", dict)(), default=str))
    return "\n".join(parts)


manager = McpConnectionManager()
