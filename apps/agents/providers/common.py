"""Helpers the provider clients share: message content, tool arguments, client options."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.agents.providers.base import ChatMessage

_DATA_URL_RE = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.+)$", re.DOTALL)


def content_text(content: str | list[dict[str, Any]]) -> str:
    """The text of a message, whatever its shape; image parts contribute nothing."""
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")


def image_parts(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return []
    return [part for part in content if part.get("type") == "image"]


def has_images(messages: list[ChatMessage]) -> bool:
    return any(image_parts(message.content) for message in messages if message.role == "user")


def image_url(part: dict[str, Any]) -> str:
    """The part's URL, or a data: URL built from inline base64 (`data` + `mime_type`)."""
    if part.get("url"):
        return str(part["url"])
    if part.get("data"):
        return f"data:{part.get('mime_type') or 'image/png'};base64,{part['data']}"
    return ""


def split_data_url(url: str) -> tuple[str, str] | None:
    """(mime type, base64 data) of a data: URL; None for an ordinary URL."""
    match = _DATA_URL_RE.match(url)
    return (match["mime"], match["data"]) if match else None


def parse_tool_arguments(raw: str) -> dict[str, Any]:
    """Models sometimes send broken or non-object JSON; the call still happens with `{}` and
    `raw_arguments` keeps what was sent, so the tool layer can report the problem to the model."""
    if not raw or not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class ClientOptions:
    """Transport settings for one client: settings.py defaults, overridable per provider."""

    timeout: float
    max_retries: int
    headers: dict[str, str]
    organization: str = ""
    stream_usage: bool = True

    @classmethod
    def build(
        cls, options: dict[str, Any] | None, *, timeout: float | None = None, max_retries: int | None = None
    ) -> ClientOptions:
        options = options or {}
        return cls(
            timeout=float(
                timeout if timeout is not None else options.get("timeout_seconds") or settings.PROVIDER_TIMEOUT_SECONDS
            ),
            max_retries=int(
                max_retries if max_retries is not None else options.get("max_retries", settings.PROVIDER_MAX_RETRIES)
            ),
            headers={str(k): str(v) for k, v in (options.get("headers") or {}).items()},
            organization=str(options.get("organization") or ""),
            stream_usage=bool(options.get("stream_usage", True)),
        )
