"""The demo MCP server (tests/tools/mcp_servers/demo_server.py) over streamable HTTP on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

DEMO_MCP_SERVER = Path(__file__).resolve().parent.parent / "tools" / "mcp_servers" / "demo_server.py"


@contextlib.contextmanager
def demo_mcp_over_http(env: dict[str, str] | None = None) -> Iterator[str]:
    """Start the server with `env` added to this process's environment; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, str(DEMO_MCP_SERVER), "--http", str(port)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the demo MCP HTTP server did not start")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)
