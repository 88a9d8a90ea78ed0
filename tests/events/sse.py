"""Reading Server-Sent Events from an httpx streaming response (tests only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx


class SSEReader:
    """Parses `text/event-stream` into frames: {"id", "event", "data"} dicts, and comments as
    {"comment": text}. `data` is decoded from JSON when it is JSON."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.frames: list[dict[str, Any]] = []

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        frame: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while True:
            line = await asyncio.wait_for(self._lines.__anext__(), max(0.01, deadline - time.monotonic()))
            if line == "":
                if frame:
                    break
                continue
            if line.startswith(":"):
                frame = {"comment": line[1:].strip()}
                break
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            frame[name] = frame.get(name, "") + ("\n" if name in frame else "") + value
        if "data" in frame:
            with contextlib.suppress(ValueError):
                frame["data"] = json.loads(frame["data"])
        self.frames.append(frame)
        return frame

    async def event(self, kind: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame carrying an event (of this type), skipping comments and retry hints."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next(max(0.01, deadline - time.monotonic()))
            if "event" in frame and (kind is None or frame["event"] == kind):
                return frame

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "event" in f and isinstance(f.get("data"), dict) and f["data"].get("id")]
