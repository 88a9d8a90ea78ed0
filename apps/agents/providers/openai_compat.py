"""A ProviderClient over the official `openai` SDK, for every Chat Completions endpoint:
OpenAI itself, Ollama's `/v1`, and OpenAI-compatible servers (vLLM, LM Studio, ...).

Timeouts and retries are the SDK's own (`timeout`, `max_retries` from settings, overridable per
provider in `options`): it retries connection errors, 408/409/429 and 5xx with backoff before
anything reaches us, so an error that comes out of here has already been retried.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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
    image_parts,
    image_url,
    parse_tool_arguments,
    sanitized_status_message,
)
from apps.core import outbound

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Sent when a provider has no key (local Ollama, vLLM): the SDK insists on one, and leaving it
# unset would make the SDK read OPENAI_API_KEY from the environment, i.e. the platform's key.
NO_KEY_PLACEHOLDER = "no-key"


def map_openai_error(exc: Exception, *, provider: str, sanitize: bool = False) -> ProviderError:
    """Availability problems (the engine may fall back, the breaker counts them) versus requests
    the provider refuses (no fallback: another model would refuse them too).

    `sanitize` (tenant-owned endpoints): the message carries the status, the error type and a
    short cleaned message from an API-shaped body, never the raw body or an address."""
    blocked = outbound.blocked_in(exc)
    if blocked is not None:  # the outbound policy refused the destination: no retry helps
        return ProviderRequestError(blocked_message(provider=provider, exc=blocked))
    if isinstance(exc, openai.APITimeoutError) and sanitize:
        return ProviderUnavailable(f"{provider}: the provider did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        detail = "could not connect to the provider." if sanitize else exc.message
        return ProviderUnavailable(f"{provider}: {detail}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if sanitize:
            error_type = exc.type or exc.code or type(exc).__name__
            message = sanitized_status_message(provider=provider, status=status, error_type=error_type, body=exc.body)
        else:
            message = f"{provider}: HTTP {status}: {_error_message(exc)}"
        if status >= 500 or status in (408, 429) or isinstance(exc, openai.InternalServerError | openai.RateLimitError):
            return ProviderUnavailable(message)
        return ProviderRequestError(message)
    # An error event inside a stream or an unparsable response: the server misbehaved.
    if sanitize:
        return ProviderUnavailable(f"{provider}: the provider sent an invalid response ({type(exc).__name__}).")
    return ProviderUnavailable(f"{provider}: {getattr(exc, 'message', None) or str(exc) or type(exc).__name__}")


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message


class OpenAICompatClient:
    """One configured endpoint. Thread-safe: the SDK client holds a thread-safe connection pool."""

    def __init__(
        self,
        *,
        kind: str,
        base_url: str,
        api_key: str = "",
        options: ClientOptions | None = None,
        name: str = "",
        restrict_network: bool = True,
    ):
        """`restrict_network`: True when a tenant gave the URL (every request goes through the
        outbound policy and errors are sanitized); False for URLs the operator configured."""
        self.kind = kind
        # Accepted and stored; the outbound policy (another branch) gives it its meaning.
        self.restrict_network = restrict_network
        self.name = name or kind
        self.base_url = base_url
        self.options = options or ClientOptions.build(None)
        self.restrict_network = restrict_network
        self._sdk = openai.OpenAI(
            api_key=api_key or NO_KEY_PLACEHOLDER,
            base_url=base_url,
            organization=self.options.organization or None,
            timeout=self.options.timeout,
            max_retries=self.options.max_retries,
            default_headers=self.options.headers or None,
            http_client=_restricted_http_client(self.options) if restrict_network else None,
        )

    def _error(self, exc: Exception) -> ProviderError:
        return map_openai_error(exc, provider=self.name, sanitize=self.restrict_network)

    # --- chat ----------------------------------------------------------------------------------

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
        params: dict[str, Any] = {"model": model, "messages": [to_openai_message(m) for m in messages], "stream": True}
        if self.options.stream_usage:
            params["stream_options"] = {"include_usage": True}
        if tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
        if temperature is not None:
            params["temperature"] = temperature
        if max_output_tokens:
            # OpenAI's reasoning models accept only the newer name; other servers know the old one.
            key = "max_completion_tokens" if self.kind == "openai" else "max_tokens"
            params[key] = max_output_tokens

        text_parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage = Usage()
        finish = ""
        served_model = model
        try:
            # The SDK's low-level post, as its README shows for undocumented endpoints, rather than
            # `chat.completions.create`: create() first walks the whole body against its
            # TypedDicts (`maybe_transform`), 8.5 ms of CPU for a 21-message history here, to
            # rename aliases and encode files that our plain JSON body does not have. The same
            # request goes out (same client, retries, timeout, auth and headers).
            stream = self._sdk.post(
                "/chat/completions",
                body=params,
                cast_to=ChatCompletion,
                options={"security": {"bearer_auth": True}},
                stream=True,
                stream_cls=openai.Stream[ChatCompletionChunk],
            )
            # `with` closes the HTTP response when on_text raises (a cancelled turn) or we finish.
            with stream:
                for chunk in stream:
                    served_model = chunk.model or served_model
                    if chunk.usage is not None:
                        usage = Usage(
                            input_tokens=chunk.usage.prompt_tokens or 0,
                            output_tokens=chunk.usage.completion_tokens or 0,
                        )
                    for choice in chunk.choices[:1]:  # we never ask for n > 1
                        delta = choice.delta
                        if delta is not None and delta.content:
                            text_parts.append(delta.content)
                            on_text(delta.content)
                        if delta is not None and delta.tool_calls:
                            _accumulate_tool_calls(calls, delta.tool_calls)
                        if choice.finish_reason:
                            finish = choice.finish_reason
        except (openai.OpenAIError, outbound.OutboundBlocked) as exc:
            raise self._error(exc) from exc

        tool_calls = [
            ToolCallRequest(
                id=call["id"] or f"call_{index}",
                name=call["name"],
                arguments=parse_tool_arguments(call["arguments"]),
                raw_arguments=call["arguments"],
            )
            for index, call in sorted(calls.items())
            if call["name"]
        ]
        return ChatResult(
            text="".join(text_parts),
            tool_calls=tool_calls,
            usage=usage,
            finish_reason=_finish_reason(finish, bool(tool_calls)),
            model=served_model,
            provider_kind=self.kind,
        )

    # --- models --------------------------------------------------------------------------------

    def list_models(self) -> list[ModelListing]:
        try:
            return [ModelListing(id=m.id, owned_by=getattr(m, "owned_by", "") or "") for m in self._sdk.models.list()]
        except (openai.OpenAIError, outbound.OutboundBlocked) as exc:
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


def _restricted_http_client(options: ClientOptions):
    # The SDK's own defaults (pool size, following redirects: each hop is checked by the
    # transport), with the transport of the outbound policy underneath.
    return outbound.http_client(
        restrict_network=True,
        timeout=options.timeout,
        limits=openai.DEFAULT_CONNECTION_LIMITS,
        follow_redirects=True,
    )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _accumulate_tool_calls(calls: dict[int, dict[str, str]], deltas: list[Any]) -> None:
    """Tool calls stream as fragments keyed by `index`: the first carries id and name, the rest
    pieces of the JSON arguments. Servers that omit the index (some Ollama versions send each
    call whole) get the next free slot, or the slot of the id they repeat."""
    for delta in deltas:
        index = delta.index
        if index is None:
            index = next((i for i, c in calls.items() if delta.id and c["id"] == delta.id), len(calls))
        call = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        if delta.id:
            call["id"] = delta.id
        function = delta.function
        if function is not None:
            if function.name:
                call["name"] = function.name
            if function.arguments:
                call["arguments"] += function.arguments


def _finish_reason(raw: str, has_tool_calls: bool) -> str:
    # Some servers say "stop" even when they called tools; the calls are what matters.
    if has_tool_calls:
        return "tool_calls"
    return "length" if raw == "length" else "stop"


def to_openai_message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content_text(message.content)}
    if message.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": content_text(message.content) or None}
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.raw_arguments or json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ]
        return out
    if message.role == "user" and image_parts(message.content):
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if part.get("type") == "text" and part.get("text"):
                parts.append({"type": "text", "text": part["text"]})
            elif part.get("type") == "image" and image_url(part):
                parts.append({"type": "image_url", "image_url": {"url": image_url(part)}})
        return {"role": "user", "content": parts}
    return {"role": message.role, "content": content_text(message.content)}
