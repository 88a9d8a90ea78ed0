"""A small MCP server built with the `mcp` SDK, for the tests: the platform starts it over stdio
(`python demo_server.py`) or the tests run it over streamable HTTP (`--http PORT`)."""

from __future__ import annotations

import argparse
import json
import os
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("demo", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def secret_env() -> str:
    """Which DEMO_* environment variables the server was started with (names=values)."""
    return ",".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("DEMO_"))


@server.tool()
def environment() -> str:
    """The server's whole environment as a JSON object (tests what the platform passes on)."""
    return json.dumps(dict(os.environ), sort_keys=True)


@server.tool()
def fail(message: str) -> str:
    """Always fail with the message."""
    raise ValueError(message)


@server.tool()
def crash() -> str:
    """End the server process at once (tests reconnection)."""
    os._exit(3)


@server.tool(name="files.search")
def oddly_named(query: str) -> str:
    """A tool whose name is not valid for model APIs."""
    return f"searched {query}"


@server.tool()
def pid() -> int:
    """The server's process id (tests whether calls share one process)."""
    return os.getpid()


@server.tool()
def record_and_wait(key: str, seconds: float) -> str:
    """A slow side effect that counts its runs: append the key to $DEMO_RUN_LOG, then wait."""
    with open(os.environ["DEMO_RUN_LOG"], "a") as log:
        log.write(key + "\n")
    time.sleep(seconds)
    return f"recorded {key}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=0, help="Serve streamable HTTP on 127.0.0.1:PORT.")
    options = parser.parse_args()
    if options.http:
        server.run("streamable-http", host="127.0.0.1", port=options.http)
    else:
        server.run("stdio")
