"""The contract between the turn engine and model providers.

The engine builds a list of `ChatMessage`s and `ToolSpec`s and calls `ProviderClient.chat()`.
A client streams: it calls `on_text(delta)` for each piece of answer text as it arrives and
returns one `ChatResult` at the end. `on_text` may raise (the engine raises `TurnCancelled`
to stop a turn mid-stream); a client must let that propagate and close its stream.

Provider failures the engine can route around (server errors, timeouts, connection errors,
rate limits) are raised as `ProviderUnavailable`; a request the provider refuses for its
content or shape is `ProviderRequestError` (no fallback: another model would refuse it too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class ProviderError(Exception):
    """Base of every error a provider client raises."""


class ProviderUnavailable(ProviderError):
    """Transient or availability failure: 5xx, timeout, connection, 429. Counts for the breaker."""


class ProviderRequestError(ProviderError):
    """The provider rejected the request itself (400, 401, 404 model): not retried, no fallback."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema object


@dataclass(frozen=True)
class ToolCallRequest:
    id: str  # the provider's id for the call, echoed back with the result
    name: str
    arguments: dict[str, Any]  # parsed; `{}` when the model sent invalid JSON (see raw_arguments)
    raw_arguments: str = ""


@dataclass(frozen=True)
class ChatMessage:
    """One message of the conversation as sent to a model.

    `content` is text, or a list of parts `{"type": "text", "text": ...}` /
    `{"type": "image", "url": ..., "mime_type": ...}` for multimodal user messages.
    Assistant messages that asked for tools carry `tool_calls`; tool results are
    role "tool" with `tool_call_id` and `name`.
    """

    role: str  # system | user | assistant | tool
    content: str | list[dict[str, Any]] = ""
    tool_calls: tuple[ToolCallRequest, ...] = ()
    tool_call_id: str = ""
    name: str = ""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class ChatResult:
    text: str
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"  # stop | tool_calls | length | cancelled
    model: str = ""
    provider_kind: str = ""
    offline: bool = False  # True for the built-in offline provider: its answers are labeled as such


@dataclass(frozen=True)
class ModelListing:
    id: str
    owned_by: str = ""


@dataclass(frozen=True)
class ProbeResult:
    reachable: bool
    latency_ms: float
    error: str = ""
    models_seen: int = 0


class ProviderClient(Protocol):
    kind: str

    def chat(
        self,
        *,
        model: str,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        temperature: float | None,
        max_output_tokens: int | None,
        on_text: Callable[[str], None],
    ) -> ChatResult: ...

    def list_models(self) -> list[ModelListing]: ...

    def probe(self) -> ProbeResult: ...
