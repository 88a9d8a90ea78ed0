"""Helpers the provider clients share: message content, tool arguments, client options, and
the sanitized form of upstream errors that tenant-owned providers report."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.agents.providers.base import ChatMessage
from apps.core.outbound import ALLOW_LIST_HINT

_DATA_URL_RE = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.+)$", re.DOTALL)


def content_text(content: str | list[dict[str, Any]]) -> str:
    """The text of a message, whatever its shape; image parts contribute nothing."""
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")


# Text files reach models fenced in <attachment name=... type=... size=...> (the turn context
# writes them); every part made from an attachment also carries an `attachment` dict that the
# providers drop and the offline model reads.
ATTACHMENT_TAG = "attachment"


def attachments_in(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the turn context said about each attachment of a message (name, type, size, shown)."""
    if isinstance(content, str):
        return []
    return [part["attachment"] for part in content if isinstance(part.get("attachment"), dict)]


def typed_text(content: str | list[dict[str, Any]]) -> str:
    """The text the person typed: content_text without the attachments' contents and notes."""
    if isinstance(content, str):
        return content
    return "\n".join(
        str(part.get("text", "")) for part in content if part.get("type") == "text" and "attachment" not in part
    )


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


# --- what a tenant sees of an upstream failure ------------------------------------------------------

_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_IPV4_RE = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b")
_IPV6_RE = re.compile(r"\[?\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}\b\]?(?::\d{1,5})?", re.IGNORECASE)
_HOST_PORT_RE = re.compile(r"\b[\w.-]+:\d{2,5}\b")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")
SANITIZED_MAX_CHARS = 200


def sanitize_upstream_text(text: str, *, limit: int = SANITIZED_MAX_CHARS) -> str:
    """A short, single-line form of what an upstream said, without the URLs and addresses in it:
    a provider URL must not become a way to read other servers' banners or map a network."""
    text = _CONTROL_RE.sub(" ", str(text or ""))
    for pattern, placeholder in ((_URL_RE, "[url]"), (_IPV4_RE, "[address]"), (_IPV6_RE, "[address]")):
        text = pattern.sub(placeholder, text)
    text = _HOST_PORT_RE.sub("[address]", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def sanitized_status_message(*, provider: str, status: int, error_type: str, body: Any) -> str:
    """`<provider>: HTTP <status> (<type>): <message>` from an API-shaped JSON error body only;
    any other body (an HTML page, another protocol's banner) is not repeated at all."""
    message = ""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = sanitize_upstream_text(error["message"])
    kind = sanitize_upstream_text(error_type, limit=60) if error_type else ""
    text = f"{provider}: HTTP {status}" + (f" ({kind})" if kind else "")
    return f"{text}: {message}" if message else text


def blocked_message(*, provider: str, exc: Exception) -> str:
    return f"{provider}: {exc} ({ALLOW_LIST_HINT})"
