"""A ProviderClient over the official `anthropic` SDK (Messages API).

The differences from Chat Completions that this module absorbs: the system prompt is a separate
parameter; tool calls are `tool_use` content blocks and their results `tool_result` blocks in
the next *user* message; consecutive messages of one role are merged; images are base64 or URL
`source` blocks; `max_tokens` is mandatory; usage arrives in message_start and message_delta.

We read the raw event stream (`create(stream=True)`) rather than the `messages.stream()`
helper: the helper parses partial tool JSON as it arrives and fails on a model's broken JSON,
which we want to keep as `raw_arguments` instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2

from apps.agents.providers.base import (
    ChatMessage,
    ChatResult,
    ModelListing,
    ProbeResult,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailable,
    ToolCallRequest,
    ToolSpec,
    Usage,
)
from apps.agents.providers.common import (
    ClientOptions,
    blocked_message,
    content_text,
    image_url,
    parse_tool_arguments,
    sanitized_status_message,
    split_data_url,
)
from apps.core import outbound

ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
# The Messages API requires max_tokens; this is the ceiling when the agent sets none.
DEFAULT_MAX_TOKENS = 4096
NO_KEY_PLACEHOLDER = "no-key"  # never let the SDK fall back to ANTHROPIC_API_KEY from the environment

# Error types (`error.type`) that say the request itself is wrong, whatever the HTTP status.
_REQUEST_ERROR_TYPES = {"invalid_request_error", "authentication_error", "permission_error", "not_found_error"}


def map_anthropic_error(exc: Exception, *, provider: str, sanitize: bool = False) -> ProviderError:
    """As map_openai_error: `sanitize` (tenant-owned endpoints) keeps the status, the error type
    and a short cleaned message, never the raw body or an address."""
    blocked = outbound.blocked_in(exc)
    if blocked is not None:  # the outbound policy refused the destination: no retry helps
        return ProviderRequestError(blocked_message(provider=provider, exc=blocked))
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        # The SDK wraps errors before the stream starts; a read timeout mid-stream comes raw.
        if sanitize:
            timed_out = isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException)
            what = "did not answer in time" if timed_out else "could not be reached"
            return ProviderUnavailable(f"{provider}: the provider {what}.")
        return ProviderUnavailable(f"{provider}: {_describe(exc)}")
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if sanitize:
            error_type = exc.type or type(exc).__name__
            message = sanitized_status_message(provider=provider, status=status, error_type=error_type, body=exc.body)
        else:
            message = f"{provider}: HTTP {status}: {exc.api_message or exc.message}"
        if status >= 500 or status in (408, 429):
            return ProviderUnavailable(message)
        if status >= 400:
            return ProviderRequestError(message)
        # An `error` event inside a 200 stream (overloaded, api_error): decided by its type.
        if exc.type in _REQUEST_ERROR_TYPES:
            return ProviderRequestError(message)
        return ProviderUnavailable(message)
    if sanitize:
        return ProviderUnavailable(f"{provider}: the provider sent an invalid response ({type(exc).__name__}).")
    return ProviderUnavailable(f"{provider}: {_describe(exc)}")


def _describe(exc: Exception) -> str:
    # httpx2's timeouts often carry no message; the class name ("ReadTimeout") still says what happened.
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


class AnthropicClient:
    kind = "anthropic"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "",
        options: ClientOptions | None = None,
        name: str = "",
        restrict_network: bool = True,
    ):
        """`restrict_network`: True when a tenant gave the URL (every request goes through the
        outbound policy and errors are sanitized); False for URLs the operator configured."""
        self.name = name or self.kind
        # Accepted and stored; the outbound policy (another branch) gives it its meaning.
        self.restrict_network = restrict_network
        self.base_url = base_url
        self.options = options or ClientOptions.build(None)
        self.restrict_network = restrict_network
        http_client = None
        if restrict_network:
            # The SDK's own pool size and redirect following; each hop is checked by the transport.
            http_client = outbound.http_client(
                restrict_network=True,
                timeout=self.options.timeout,
                limits=anthropic.DEFAULT_CONNECTION_LIMITS,
                follow_redirects=True,
            )
        self._sdk = anthropic.Anthropic(
            api_key=api_key or NO_KEY_PLACEHOLDER,
            base_url=base_url,
            timeout=self.options.timeout,
            max_retries=self.options.max_retries,
            default_headers=self.options.headers or None,
            http_client=http_client,
        )

    def _error(self, exc: Exception) -> ProviderError:
        return map_anthropic_error(exc, provider=self.name, sanitize=self.restrict_network)

    def chat(
        self,
        *,
        model: str,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        temperature: float | None,
        max_output_tokens: int | None,
        on_text: Callable[[str], None],
    ) -> ChatResult:
        system, converted = to_anthropic_messages(messages)
        params: dict[str, Any] = {
            "model": model,
            "messages": converted,
            "max_tokens": max_output_tokens or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            params["system"] = system
        if tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
            ]
        if temperature is not None:
            params["temperature"] = temperature

        text_parts: list[str] = []
        uses: dict[int, dict[str, str]] = {}  # content block index -> tool_use being streamed
        input_tokens = output_tokens = 0
        stop_reason = ""
        served_model = model
        try:
            stream = self._sdk.messages.create(**params)
            with stream:  # closes the response when on_text raises (a cancelled turn)
                for event in stream:
                    kind = event.type
                    if kind == "message_start":
                        served_model = event.message.model or served_model
                        input_tokens, output_tokens = _usage_tokens(event.message.usage, input_tokens, output_tokens)
                    elif kind == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use":
                            # A tool without arguments may come whole in `input`, with no deltas.
                            initial = json.dumps(block.input) if getattr(block, "input", None) else ""
                            uses[event.index] = {"id": block.id, "name": block.name, "json": "", "initial": initial}
                    elif kind == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta" and delta.text:
                            text_parts.append(delta.text)
                            on_text(delta.text)
                        elif delta.type == "input_json_delta" and event.index in uses:
                            uses[event.index]["json"] += delta.partial_json or ""
                    elif kind == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        input_tokens, output_tokens = _usage_tokens(event.usage, input_tokens, output_tokens)
        except (anthropic.AnthropicError, httpx2.TransportError, outbound.OutboundBlocked) as exc:
            raise self._error(exc) from exc

        tool_calls = []
        for _, use in sorted(uses.items()):
            raw = use["json"] or use["initial"]
            tool_calls.append(
                ToolCallRequest(id=use["id"], name=use["name"], arguments=parse_tool_arguments(raw), raw_arguments=raw)
            )
        return ChatResult(
            text="".join(text_parts),
            tool_calls=tool_calls,
            usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            finish_reason=_finish_reason(stop_reason, bool(tool_calls)),
            model=served_model,
            provider_kind=self.kind,
        )

    def list_models(self) -> list[ModelListing]:
        try:
            return [ModelListing(id=m.id, owned_by="anthropic") for m in self._sdk.models.list()]
        except (anthropic.AnthropicError, httpx2.TransportError, outbound.OutboundBlocked) as exc:
            raise self._error(exc) from exc

    def probe(self) -> ProbeResult:
        started = time.perf_counter()
        try:
            seen = len(self.list_models())
        except ProviderError as exc:
            return ProbeResult(reachable=False, latency_ms=_ms_since(started), error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a probe reports every failure, it never raises
            error = type(exc).__name__ if self.restrict_network else f"{type(exc).__name__}: {exc}"
            return ProbeResult(reachable=False, latency_ms=_ms_since(started), error=error)
        return ProbeResult(reachable=True, latency_ms=_ms_since(started), models_seen=seen)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _usage_tokens(usage: Any, input_tokens: int, output_tokens: int) -> tuple[int, int]:
    """message_start carries the input count, message_delta the cumulative output count; cache
    reads and writes are input the model processed too, so they count."""
    if usage is None:
        return input_tokens, output_tokens
    seen_input = sum(
        getattr(usage, name, None) or 0
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    seen_output = getattr(usage, "output_tokens", None) or 0
    return max(input_tokens, seen_input), max(output_tokens, seen_output)


def _finish_reason(stop_reason: str, has_tool_calls: bool) -> str:
    if has_tool_calls or stop_reason == "tool_use":
        return "tool_calls"
    return "length" if stop_reason == "max_tokens" else "stop"


def to_anthropic_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages) in the Messages API's shape."""
    system = "\n\n".join(content_text(m.content) for m in messages if m.role == "system" and content_text(m.content))
    converted: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"  # tool results travel as user
        blocks = _blocks(message)
        if not blocks:
            continue
        if converted and converted[-1]["role"] == role:
            # The API wants alternating roles; results of parallel tool calls share one message.
            converted[-1]["content"].extend(blocks)
        else:
            converted.append({"role": role, "content": blocks})
    return system, converted


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": content_text(message.content) or "(empty)",
            }
        ]
    blocks: list[dict[str, Any]] = []
    if isinstance(message.content, str):
        if message.content.strip():
            blocks.append({"type": "text", "text": message.content})
    else:
        for part in message.content:
            if part.get("type") == "text" and str(part.get("text", "")).strip():
                blocks.append({"type": "text", "text": part["text"]})
            elif part.get("type") == "image" and message.role == "user":
                block = _image_block(part)
                if block:
                    blocks.append(block)
    if message.role == "assistant":
        blocks += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            for call in message.tool_calls
        ]
    return blocks


def _image_block(part: dict[str, Any]) -> dict[str, Any] | None:
    url = image_url(part)
    if not url:
        return None
    inline = split_data_url(url)
    if inline:
        mime, data = inline
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}
