"""Measure what an MCP tool call costs: a fresh session per call versus the pooled connection.

    manage.py mcp_latency --tool echo --arguments '{"text": "hi"}' -- python server.py
    manage.py mcp_latency --url http://127.0.0.1:8000/mcp --tool echo --arguments '{"text": "hi"}'

Prints medians and 95th percentiles in milliseconds; nothing is stored.
"""

from __future__ import annotations

import json
import statistics
import time

import anyio
from django.core.management.base import BaseCommand, CommandError

from apps.tools.mcp_client import McpConnectionManager, McpServerSpec


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):8.1f} ms   p95 {p95:8.1f} ms   (n={len(ordered)})"


class Command(BaseCommand):
    help = "Measure MCP tool call latency: fresh session per call vs the per-process pooled connection."

    def add_arguments(self, parser):
        parser.add_argument("server", nargs="*", help="stdio: the command and its arguments (after --).")
        parser.add_argument("--url", default="", help="streamable HTTP: the server's URL.")
        parser.add_argument("--tool", required=True)
        parser.add_argument("--arguments", default="{}", help="JSON object.")
        parser.add_argument("-n", type=int, default=20, help="Pooled calls to time (fresh sessions: n/4, at least 3).")

    def handle(self, *args, **options):
        arguments = json.loads(options["arguments"])
        if options["url"]:
            spec = McpServerSpec(key="bench", tenant_id="-", plugin_name="bench", transport="http", url=options["url"])
        elif options["server"]:
            command, *rest = options["server"]
            spec = McpServerSpec(
                key="bench", tenant_id="-", plugin_name="bench", transport="stdio", command=command, args=tuple(rest)
            )
        else:
            raise CommandError("Give a stdio command (after --) or --url.")

        fresh = [self._fresh_call(spec, options["tool"], arguments) for _ in range(max(3, options["n"] // 4))]
        self.stdout.write(f"fresh session per call  {_percentiles(fresh)}")

        manager = McpConnectionManager()
        started = time.perf_counter()
        manager.call_tool(spec, options["tool"], arguments)
        self.stdout.write(f"pooled, first call      {(time.perf_counter() - started) * 1000:8.1f} ms (connects)")
        pooled = []
        for _ in range(options["n"]):
            started = time.perf_counter()
            manager.call_tool(spec, options["tool"], arguments)
            pooled.append((time.perf_counter() - started) * 1000)
        self.stdout.write(f"pooled, warm            {_percentiles(pooled)}")
        manager.close_all()

    def _fresh_call(self, spec: McpServerSpec, tool: str, arguments: dict) -> float:
        from mcp import Client, StdioServerParameters

        target = (
            spec.url if spec.transport == "http" else StdioServerParameters(command=spec.command, args=list(spec.args))
        )

        async def once() -> None:
            async with Client(target, cache=None) as client:
                await client.call_tool(tool, arguments)

        started = time.perf_counter()
        anyio.run(once)
        return (time.perf_counter() - started) * 1000
